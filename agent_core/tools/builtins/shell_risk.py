"""``run_command``'s risk rules: which command lines are CRITICAL, and where they send data.

A line is CRITICAL when any command in it destroys something (``_shell_rules``), or when
what it runs cannot be read in advance: a command whose name is worked out at run time, a
script fed through a pipe, ``eval`` of computed text, anything that decodes data and runs
it. Wrappers (``sudo``, ``env``, ``xargs``...), ``sh -c``, ``ssh``, ``find -exec``, command
substitutions, here-documents and inline interpreter code (``python -c``, ``perl -e``) are
looked into, within a bounded depth and amount of work; a line that cannot be read within
them, or at all, is CRITICAL too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import chain
from typing import Any

from agent_core.models import RiskLevel
from agent_core.tools.builtins._shell_data import code_reason, data_reason, destinations, first
from agent_core.tools.builtins._shell_rules import DELETERS, device_or_outside, rule_for
from agent_core.tools.builtins._shell_words import (
    PROCESS_SUBSTITUTION,
    Script,
    SimpleCommand,
    flags,
    operands,
    parse,
)

__all__ = ["DESTRUCTIVE_PATTERNS", "command_destinations", "command_risk", "destructive_reason"]

_MAX_DEPTH = 6
_MAX_STEPS = 2_000
_WRAPPED_OPERANDS = 4
"""How many operands of a wrapper may be where its command starts (``ionice -c 2 -n 7 rm``)."""

DESTRUCTIVE_PATTERNS: tuple[re.Pattern[str], ...] = (
    # A fork bomb: a function that calls itself twice through a pipe, in the background.
    re.compile(r"([\w:.]{1,32})\s*\(\s*\)\s*\{[^}]{0,64}?\1\s*\|\s*\1\s*&"),
    re.compile(r">\s*/dev/(sd|hd|nvme|vd|xvd|mmcblk)"),
)
"""Whole-line patterns, checked before the line is taken apart."""

_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh",
                     "rbash", "yash", "posh"})  # fmt: skip
_CODE_FLAGS = {
    "python": {"-c"}, "perl": {"-e", "-E"}, "ruby": {"-e"}, "node": {"-e", "--eval", "-p",
    "--print"}, "php": {"-r"}, "lua": {"-e"}, "pwsh": {"-c", "-command"}, "osascript": {"-e"},
    "rscript": {"-e"},
}  # fmt: skip
_AWKS = frozenset({"awk", "gawk", "mawk", "nawk"})
_WRAPPERS = frozenset({
    "sudo", "doas", "env", "nohup", "nice", "ionice", "time", "timeout", "stdbuf", "chrt",
    "taskset", "setsid", "unbuffer", "exec", "command", "builtin", "flock", "chroot", "busybox",
    "strace", "ltrace", "torsocks", "proxychains", "proxychains4", "firejail", "fakeroot",
    "nsenter", "unshare", "systemd-run", "caffeinate", "sg", "xargs", "parallel",
})  # fmt: skip
_REMOTE_SHELLS = {"ssh": True, "watch": False}
"""Commands that join their remaining words into a shell line: whether a host comes first."""
_CONTAINERS = frozenset({"docker", "podman", "nerdctl", "kubectl", "oc"})
_KEYWORDS = frozenset({"{", "}", "!", "if", "then", "elif", "else", "while", "until", "do",
                       "function", "coproc"})  # fmt: skip
_STDIN = frozenset({"-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})
_DECODERS = {"base64": {"d", "D", "--decode"}, "base32": {"d", "--decode"},
             "basenc": {"d", "--decode"}, "xxd": {"r", "--revert"}, "uudecode": set(),
             "openssl": {"d"}, "gpg": {"d", "--decrypt"}, "rev": set()}  # fmt: skip
_DB_CLIENTS = frozenset({
    "psql", "mysql", "mariadb", "sqlite3", "sqlcmd", "clickhouse-client", "clickhouse", "cqlsh",
    "mongo", "mongosh", "redis-cli", "duckdb", "sqlplus", "isql", "bq", "cockroach", "snowsql",
    "usql", "pgcli", "mycli", "litecli", "trino", "presto", "spark-sql", "beeline", "dbshell",
})  # fmt: skip


def command_risk(arguments: dict[str, Any]) -> RiskLevel | None:
    """CRITICAL when the command line destroys something or cannot be foreseen; else None
    (the tool's base risk stands)."""
    return RiskLevel.CRITICAL if destructive_reason(str(arguments.get("command", ""))) else None


def destructive_reason(line: str) -> str | None:
    """Why ``line`` is CRITICAL, or None when nothing in it is."""
    try:
        return _Reader().line(line, 0)
    except _TooComplex:
        return "too complex to read"


def command_destinations(arguments: dict[str, Any]) -> list[str]:
    """The hosts a command line may send data to (``"*"``: one that cannot be told)."""
    return destinations(str(arguments.get("command", "")))


class _TooComplex(Exception):
    """Signal: the line takes more work to read than anyone should need."""


def _name(raw: str) -> str:
    return raw.rsplit("/", 1)[-1].lower()


def _computed_name(raw: str) -> bool:
    if raw in ("[", "[["):
        return False
    return any(char in raw for char in "$`*?[{") or raw == PROCESS_SUBSTITUTION


def _without_prefixes(words: list[str]) -> list[str]:
    """The words from the command name on: keywords and ``NAME=value`` assignments skipped."""
    index = 0
    while index < len(words) and (
        words[index] in _KEYWORDS or re.match(r"^[A-Za-z_]\w*=", words[index])
    ):
        index += 1
    return words[index:]


def _operand_positions(args: list[str]) -> list[int]:
    positions = [i for i, word in enumerate(args) if not word.startswith("-")]
    return positions[:_WRAPPED_OPERANDS]


def _value_after(args: list[str], options: set[str]) -> str | None:
    for index, word in enumerate(args[:-1]):
        if word in options:
            return args[index + 1]
    for word in args:
        option, _, value = word.partition("=")
        if option in options and value:
            return value
    return None


def _interpreter(name: str) -> str | None:
    """The kind of interpreter ``name`` is: "shell", "awk", a key of _CODE_FLAGS, or None."""
    if name in _SHELLS:
        return "shell"
    if name in _AWKS:
        return "awk"
    if re.fullmatch(r"(python|pypy)[\d.]*", name):
        return "python"
    if name in ("nodejs", "deno", "bun"):
        return "node"
    if name == "powershell":
        return "pwsh"
    return name if name in _CODE_FLAGS else None


def _inline(kind: str | None, args: list[str]) -> str | None:
    """The program given on the command line (``sh -c``, ``python -c``, ``awk 'prog'``)."""
    if kind in ("shell", "awk"):
        given = operands(args)
        wanted = "c" in flags(args) if kind == "shell" else "f" not in flags(args)
        return given[0] if wanted and given else None
    options = _CODE_FLAGS.get(kind or "", set())
    for index, word in enumerate(args[:-1]):
        grouped = re.fullmatch(r"-[a-zA-Z]+", word) and f"-{word[-1]}" in options
        if word.lower() in options or grouped:
            return args[index + 1]
    return None


def _fed(operator: str, target: str, script: Script) -> str:
    return target if operator == "<<<" else script.heredocs.get(target, "")


@dataclass(kw_only=True)
class _Reader:
    """Reads one command line, within a budget of steps."""

    steps: int = _MAX_STEPS

    def _step(self, depth: int) -> None:
        self.steps -= 1
        if self.steps < 0 or depth > _MAX_DEPTH:
            raise _TooComplex

    def line(self, text: str, depth: int) -> str | None:
        """Why the shell line ``text`` is CRITICAL."""
        self._step(depth)
        if any(pattern.search(text) for pattern in DESTRUCTIVE_PATTERNS):
            return "a fork bomb or a write to a disk"
        try:
            script = parse(text)
        except ValueError:
            return "cannot be read: its quotes do not close"
        return first(
            chain(
                (self.line(inner, depth + 1) for inner in script.substitutions),
                (self._command(command, script, depth) for command in script.commands),
                (check(script) for check in (_decodes_and_runs, _data)),
            )
        )

    def code(self, text: str, depth: int) -> str | None:
        """Why inline interpreter code ``text`` is CRITICAL."""
        self._step(depth)
        return code_reason(text, lambda line: self.line(line, depth + 1))

    def _command(self, command: SimpleCommand, script: Script, depth: int) -> str | None:
        for operator, target in command.redirects:
            if ">" in operator and device_or_outside(target):
                return "writes over a disk or a file outside the workspace"
        return self._words(command.words, command, script, depth, exact=True)

    def _words(
        self, words: list[str], command: SimpleCommand, script: Script, depth: int, *, exact: bool
    ) -> str | None:
        """Why the command ``words`` is CRITICAL. ``exact``: ``words[0]`` surely is the
        command (not perhaps an option's value after a wrapper), so a computed name counts."""
        self._step(depth)
        words = _without_prefixes(words)
        if not words:
            return None
        if exact and _computed_name(words[0]):
            return "runs a command whose name is worked out at run time"
        name, args = _name(words[0]), words[1:]
        special = self._special(name, args, command, script, depth)
        if special is not None:
            return special
        rule = rule_for(name)
        reason = rule(args) if rule is not None else None
        if reason is None and name in _CONTAINERS:
            reason = self._in_container(args, command, script, depth)
        return reason

    def _special(
        self, name: str, args: list[str], command: SimpleCommand, script: Script, depth: int
    ) -> str | None:
        """Commands that run other commands or code: wrappers, shells, interpreters, eval."""
        if name in _WRAPPERS:
            return self._wrapped(name, args, command, script, depth)
        if name == "eval":
            return self.line(" ".join(args), depth + 1)
        if name in ("source", ".") and (not args or args[0] in {PROCESS_SUBSTITUTION, *_STDIN}):
            return "runs a script made at run time (source)"
        if name in ("alias", "trap"):
            bodies = [w.partition("=")[2] for w in args] if name == "alias" else operands(args)[:1]
            return first(self.line(body, depth + 1) for body in bodies if body)
        if name in _REMOTE_SHELLS:
            starts = _operand_positions(args)[1 if _REMOTE_SHELLS[name] else 0 :]
            return first(self.line(" ".join(args[i:]), depth + 1) for i in starts)
        if name in ("su", "runuser"):
            code = _value_after(args, {"-c", "--command"})
            return self.line(code, depth + 1) if code is not None else None
        if name in ("at", "batch", "crontab") and (command.piped_in or "-" in args):
            return "schedules a script read from a pipe, which nobody can read in advance"
        if _interpreter(name) is not None:
            return self._interpreted(name, args, command, script, depth)
        if name == "find":
            return self._find_exec(args, command, script, depth)
        return None

    def _wrapped(
        self, name: str, args: list[str], command: SimpleCommand, script: Script, depth: int
    ) -> str | None:
        """A wrapper runs the command among its arguments: each operand that may be where
        that command starts is judged."""
        split = _value_after(args, {"-S", "--split-string"}) if name == "env" else None
        if split is not None:
            return self.line(split, depth + 1)
        starts = _operand_positions(args)
        if name in ("xargs", "parallel") and any(_name(args[i]) in DELETERS for i in starts):
            return "deletes files listed at run time (xargs)"
        # Only the first operand with no option before it (which might take it as a value)
        # is surely the command: "sudo -u $USER ls" must not read $USER as one.
        return first(
            self._words(args[i:], command, script, depth + 1,
                        exact=i == starts[0] and not (i and args[i - 1].startswith("-")))
            for i in starts
        )  # fmt: skip

    def _interpreted(
        self, name: str, args: list[str], command: SimpleCommand, script: Script, depth: int
    ) -> str | None:
        kind = _interpreter(name)

        def judge(code: str) -> str | None:
            return self.line(code, depth + 1) if kind == "shell" else self.code(code, depth + 1)

        code = _inline(kind, args)
        if code is not None:
            return judge(code)
        files = operands(args)
        if files and files[0] == PROCESS_SUBSTITUTION:
            return "runs a script made at run time"
        if files and not (files[0] in _STDIN or (kind == "shell" and "s" in flags(args))):
            return None  # a script file of the workspace: the base risk covers it
        if command.piped_in:
            return "runs a script read from a pipe, which nobody can read in advance"
        bodies = (_fed(op, target, script) for op, target in command.redirects if "<<" in op)
        return first(judge(body) for body in bodies)

    def _find_exec(
        self, args: list[str], command: SimpleCommand, script: Script, depth: int
    ) -> str | None:
        for index, word in enumerate(args[:-1]):
            if word in ("-exec", "-execdir", "-ok", "-okdir"):
                inner = args[index + 1 :]
                if _name(inner[0]) in DELETERS:
                    return "deletes what it finds (find -exec rm)"
                reason = self._words(inner, command, script, depth + 1, exact=True)
                if reason is not None:
                    return reason
        return None

    def _in_container(
        self, args: list[str], command: SimpleCommand, script: Script, depth: int
    ) -> str | None:
        """``docker exec|run``, ``kubectl exec|debug``: the command run inside."""
        lowered = [a.lower() for a in args]
        verb = next((v for v in ("exec", "run", "debug") if v in lowered), None)
        if verb is None:
            return None
        rest = args[lowered.index(verb) + 1 :]
        if "--" in rest:
            rest = rest[rest.index("--") + 1 :]
        return self._wrapped("exec", rest, command, script, depth) if rest else None


def _decodes_and_runs(script: Script) -> str | None:
    """Anything decoded (base64 -d, xxd -r...) in a line that also runs code is unforeseeable."""
    decodes = runs = False
    for command in script.commands:
        for index, word in enumerate(command.words):
            name = _name(word)
            options = _DECODERS.get(name)
            if options is not None and (not options or flags(command.words[index + 1 :]) & options):
                decodes = True
            runs = runs or name in ("eval", "source", ".") or _interpreter(name) is not None
    return "decodes data and runs it" if decodes and runs else None


def _data(script: Script) -> str | None:
    """Destructive statements sent to a database client anywhere in the line."""
    names = {_name(word) for command in script.commands for word in command.words}
    if not names & _DB_CLIENTS:
        return None
    words = " ".join(" ".join(c.words) for c in script.commands)
    return first(data_reason(text) for text in (script.text, words, *script.heredocs.values()))
