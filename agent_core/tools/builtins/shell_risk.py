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
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any

from agent_core.models import RiskLevel
from agent_core.tools.builtins._shell_data import code_reason, destinations, first
from agent_core.tools.builtins._shell_programs import (
    STDIN,
    data,
    decodes_and_runs,
    fed,
    files_run,
    inline,
    interpreter,
    name_of,
    plain,
    without_prefixes,
)
from agent_core.tools.builtins._shell_rules import DELETERS, device_or_outside, outside, rule_for
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

_WRAPPERS = frozenset({
    "sudo", "doas", "env", "nohup", "nice", "ionice", "time", "timeout", "stdbuf", "chrt",
    "taskset", "setsid", "unbuffer", "exec", "command", "builtin", "flock", "chroot", "busybox",
    "strace", "ltrace", "torsocks", "proxychains", "proxychains4", "firejail", "fakeroot",
    "nsenter", "unshare", "systemd-run", "caffeinate", "sg", "xargs", "parallel", "script",
})  # fmt: skip
_DELETING_VERBS = frozenset(
    {"del", "delete", "unlink", "drop", "destroy", "remove", "rmi", "purge"}
)
_EDITORS = frozenset({"vim", "vi", "nvim", "ex", "view", "gvim", "vimdiff"})
# Options and variables whose value is a command something runs (git -c core.sshCommand=...,
# ssh -o ProxyCommand=..., tar --to-command=..., GIT_SSH_COMMAND=..., PAGER=...).
_RUNS_VALUE = re.compile(
    r"command|cmd|exec|proxy|shell|editor|pager|hook|action|fsmonitor|askpass|^alias\.",
    re.IGNORECASE,
)
_REMOTE_SHELLS = {"ssh": True, "watch": False}
"""Commands that join their remaining words into a shell line: whether a host comes first."""
_CONTAINERS = frozenset({"docker", "podman", "nerdctl", "kubectl", "oc"})


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


def _computedname_of(raw: str) -> bool:
    if raw in ("[", "[["):
        return False
    return any(char in raw for char in "$`*?[{") or raw == PROCESS_SUBSTITUTION


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
        checks: tuple[Callable[[], str | None], ...] = (
            lambda: decodes_and_runs(script),
            lambda: data(script),
            lambda: self._written_then_run(script, depth),
        )
        return first(
            chain(
                (self.line(inner, depth + 1) for inner in script.substitutions),
                (self._command(command, script, depth) for command in script.commands),
                (check() for check in checks),
            )
        )

    def _written_then_run(self, script: Script, depth: int) -> str | None:
        """A script the line writes (echo, printf, a here-document) and then runs is judged
        as what it is: ``echo 'rm -rf /' > x.sh; sh x.sh``."""
        run = files_run(script)
        for command in script.commands:
            targets = {op_target for op, op_target in command.redirects if ">" in op}
            if command.words and name_of(command.words[0]) == "tee":
                targets |= set(operands(command.words[1:]))
            kinds = {run[plain(t)] for t in targets if plain(t) in run}
            texts = [" ".join(command.words[1:])]
            texts += [fed(op, t, script) for op, t in command.redirects if "<<" in op]
            for kind in kinds:
                judge = self.line if kind == "shell" else self.code
                reason = first(judge(text, depth + 1) for text in texts if text.strip())
                if reason is not None:
                    return reason
        return None

    def code(self, text: str, depth: int) -> str | None:
        """Why inline interpreter code ``text`` is CRITICAL."""
        self._step(depth)
        return code_reason(text, lambda line: self.line(line, depth + 1))

    def _command(self, command: SimpleCommand, script: Script, depth: int) -> str | None:
        for operator, target in command.redirects:
            if ">" in operator and device_or_outside(target):
                return "writes over a disk or a file outside the workspace"
        hidden = self._in_values(command.words, depth)
        return hidden or self._words(command.words, command, script, depth, exact=True)

    def _in_values(self, words: list[str], depth: int) -> str | None:
        """Commands given as option or variable values, run later by the program."""
        for word in words:
            key, equals, value = word.lstrip("-").partition("=")
            if not equals or not value:
                continue
            if key.upper() in ("LD_PRELOAD", "LD_AUDIT"):
                return "loads code into every program it starts (LD_PRELOAD)"
            if _RUNS_VALUE.search(key):
                reason = self.line(value.removeprefix("exec=").lstrip("!"), depth + 1)
                if reason is not None:
                    return reason
        return None

    def _words(
        self, words: list[str], command: SimpleCommand, script: Script, depth: int, *, exact: bool
    ) -> str | None:
        """Why the command ``words`` is CRITICAL. ``exact``: ``words[0]`` surely is the
        command (not perhaps an option's value after a wrapper), so a computed name counts."""
        self._step(depth)
        words = without_prefixes(words)
        if not words:
            return None
        if exact and _computedname_of(words[0]):
            return "runs a command whose name is worked out at run time"
        name, args = name_of(words[0]), words[1:]
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
        if name in ("source", ".") and (not args or args[0] in {PROCESS_SUBSTITUTION, *STDIN}):
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
        if name in ("at", "batch", "crontab"):
            return self._scheduled(args, command, script, depth)
        if name in _EDITORS:
            return self._editor(args, depth)
        if interpreter(name) is not None:
            return self._interpreted(name, args, command, script, depth)
        if name == "find":
            return self._find_exec(args, command, script, depth)
        return None

    def _scheduled(
        self, args: list[str], command: SimpleCommand, script: Script, depth: int
    ) -> str | None:
        """``at``, ``batch`` and ``crontab -`` run their input later, as shell."""
        if command.piped_in or "-" in args:
            return "schedules a script read from a pipe, which nobody can read in advance"
        bodies = (fed(op, target, script) for op, target in command.redirects if "<<" in op)
        return first(self.line(body, depth + 1) for body in bodies)

    def _editor(self, args: list[str], depth: int) -> str | None:
        """vim -c ':!cmd' and +'!cmd' run shell commands."""
        given = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-c", "--cmd")]
        given += [a[1:] for a in args if a.startswith("+")]
        for text in given:
            if "system(" in text:
                return "runs shell commands from the editor"
            if "!" in text:
                reason = self.line(text.split("!", 1)[1], depth + 1)
                if reason is not None:
                    return reason
        return None

    def _wrapped(
        self, name: str, args: list[str], command: SimpleCommand, script: Script, depth: int
    ) -> str | None:
        """A wrapper runs the command among its arguments: each operand that may be where
        that command starts is judged."""
        code = _value_after(args, {"-S", "--split-string"}) if name == "env" else None
        if name in ("flock", "script"):
            code = _value_after(args, {"-c", "--command"})
        if code is not None:
            return self.line(code, depth + 1)
        starts = _operand_positions(args)
        listed = {args[i].lower() for i in starts} & _DELETING_VERBS
        if name in ("xargs", "parallel") and (
            listed or any(name_of(args[i]) in DELETERS for i in starts)
        ):
            return "deletes what is listed at run time (xargs)"
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
        kind = interpreter(name)

        def judge(code: str) -> str | None:
            return self.line(code, depth + 1) if kind == "shell" else self.code(code, depth + 1)

        files = operands(args)
        if kind != "shell" and "i" in flags(args) and any(outside(f) for f in files):
            return "edits files outside the workspace in place"
        code = inline(kind, args)
        if code is not None:
            return judge(code)
        if files and files[0] == PROCESS_SUBSTITUTION:
            return "runs a script made at run time"
        if files and not (files[0] in STDIN or (kind == "shell" and "s" in flags(args))):
            return None  # a script file of the workspace: the base risk covers it
        if command.piped_in:
            return "runs a script read from a pipe, which nobody can read in advance"
        bodies = (fed(op, target, script) for op, target in command.redirects if "<<" in op)
        return first(judge(body) for body in bodies)

    def _find_exec(
        self, args: list[str], command: SimpleCommand, script: Script, depth: int
    ) -> str | None:
        for index, word in enumerate(args[:-1]):
            if word in ("-exec", "-execdir", "-ok", "-okdir"):
                inner = args[index + 1 :]
                if name_of(inner[0]) in DELETERS:
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
