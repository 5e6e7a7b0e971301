"""What programs a command line starts and what they are fed: interpreters and their inline
code, scripts written and then run, data decoded and run, statements sent to databases."""

from __future__ import annotations

import re

from agent_core.tools.builtins._shell_data import data_reason, first
from agent_core.tools.builtins._shell_words import Script, flags, operands

__all__ = [
    "DB_CLIENTS",
    "STDIN",
    "data",
    "decodes_and_runs",
    "fed",
    "files_run",
    "inline",
    "interpreter",
    "name_of",
    "plain",
    "without_prefixes",
]

_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh",
                     "rbash", "yash", "posh"})  # fmt: skip
_CODE_FLAGS = {
    "python": {"-c"}, "perl": {"-e", "-E"}, "ruby": {"-e"}, "node": {"-e", "--eval", "-p",
    "--print"}, "php": {"-r"}, "lua": {"-e"}, "pwsh": {"-c", "-command"}, "osascript": {"-e"},
    "rscript": {"-e"},
}  # fmt: skip
_AWKS = frozenset({"awk", "gawk", "mawk", "nawk"})
STDIN = frozenset({"-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})
_KEYWORDS = frozenset({"{", "}", "!", "if", "then", "elif", "else", "while", "until", "do",
                       "function", "coproc"})  # fmt: skip
_DECODERS = {"base64": {"d", "D", "--decode"}, "base32": {"d", "--decode"},
             "basenc": {"d", "--decode"}, "xxd": {"r", "--revert"}, "uudecode": set(),
             "openssl": {"d"}, "gpg": {"d", "--decrypt"}, "rev": set()}  # fmt: skip
DB_CLIENTS = frozenset({
    "psql", "mysql", "mariadb", "sqlite3", "sqlcmd", "clickhouse-client", "clickhouse", "cqlsh",
    "mongo", "mongosh", "redis-cli", "duckdb", "sqlplus", "isql", "bq", "cockroach", "snowsql",
    "usql", "pgcli", "mycli", "litecli", "trino", "presto", "spark-sql", "beeline", "dbshell",
})  # fmt: skip


def name_of(raw: str) -> str:
    return raw.rsplit("/", 1)[-1].lower()


def without_prefixes(words: list[str]) -> list[str]:
    """The words from the command name on: keywords and ``NAME=value`` assignments skipped."""
    index = 0
    while index < len(words) and (
        words[index] in _KEYWORDS or re.match(r"^[A-Za-z_]\w*=", words[index])
    ):
        index += 1
    return words[index:]


def interpreter(name: str) -> str | None:
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


def inline(kind: str | None, args: list[str]) -> str | None:
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


def fed(operator: str, target: str, script: Script) -> str:
    return target if operator == "<<<" else script.heredocs.get(target, "")


def plain(path: str) -> str:
    """``path`` without a leading ``./``."""
    return path.removeprefix("./")


def files_run(script: Script) -> dict[str, str]:
    """The files a line runs, and how: scripts given to an interpreter (its kind) or to
    ``source``, and ``./name`` (as shell, the likeliest)."""
    run: dict[str, str] = {}
    for command in script.commands:
        words = without_prefixes(command.words)
        if not words:
            continue
        name, given = name_of(words[0]), operands(words[1:])
        if "/" in words[0]:
            run[plain(words[0])] = "shell"
        kind = "shell" if name in ("source", ".") else interpreter(name)
        if given and kind is not None:
            run[plain(given[0])] = kind
    return run


def decodes_and_runs(script: Script) -> str | None:
    """Anything decoded (base64 -d, xxd -r...) in a line that also runs code is unforeseeable."""
    decodes = runs = False
    for command in script.commands:
        for index, word in enumerate(command.words):
            name = name_of(word)
            options = _DECODERS.get(name)
            if options is not None and (not options or flags(command.words[index + 1 :]) & options):
                decodes = True
            runs = runs or name in ("eval", "source", ".", *DB_CLIENTS)
            runs = runs or interpreter(name) is not None
    return "decodes data and runs it" if decodes and runs else None


def data(script: Script) -> str | None:
    """Destructive statements sent to a database client anywhere in the line."""
    names = {name_of(word) for command in script.commands for word in command.words}
    if not names & DB_CLIENTS:
        return None
    words = " ".join(" ".join(c.words) for c in script.commands)
    return first(data_reason(text) for text in (script.text, words, *script.heredocs.values()))
