"""What text handed to another program does: inline interpreter code, SQL, network use.

``python -c``, ``perl -e`` and the like are judged by what their code calls (deleting files,
decoding data and running it, shelling out); text sent to a database client by its
statements (DROP, TRUNCATE, DELETE or UPDATE without WHERE, FLUSHALL, drop()).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["code_reason", "data_reason", "destinations", "first"]

_DELETES = re.compile(
    r"shutil\s*\.\s*rmtree|\bos\s*\.\s*(remove|unlink|rmdir|removedirs|truncate)\b"
    r"|\.\s*(unlink|rmdir)\s*\(|\brmtree\s*\(|\bunlink\s*[\s(]|\bremove_tree\b|\brm_rf?\b"
    r"|FileUtils\s*\.\s*rm|File\s*\.\s*delete|Dir\s*\.\s*(rmdir|delete)|\b(rm|rmdir|unlink)Sync\b"
    r"|\bfs\s*\.\s*(promises\s*\.\s*)?(rm|rmdir|unlink)\s*\(|Remove-Item|\bshred\b",
    re.IGNORECASE,
)
_DECODES = re.compile(
    r"b64decode|decodebytes|decodestring|fromhex|unhexlify|codecs\s*\.\s*decode|\bdecode\s*\("
    r"|decode_base64|MIME::Base64|Buffer\s*\.\s*from\s*\([^)]{0,200}base64|\batob\s*\("
    r"|\bpack\s*\(|\bchr\s*\(|\[::-1\]|rot_?13|\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\[0-7]{3}",
    re.IGNORECASE,
)
_RUNS = re.compile(
    r"\b(exec|eval|compile|system|popen|spawn|spawnSync|execSync|execFile|subprocess|Popen"
    r"|check_output|check_call|run|call|execute|getattr|getline|__import__|Invoke-Expression"
    r"|iex)\b|\bqx\s*\W",
    re.IGNORECASE,
)
_PIPED_TO_SHELL = re.compile(r"\|\s*[\"'](?:/bin/)?(sh|bash|zsh|dash|ksh)\b")
_COMPUTED_CALL = re.compile(r"getattr\s*\(\s*__import__|__import__\s*\(\s*['\"][^'\"]*['\"]\s*\+")
_LITERAL = re.compile(r"'((?:\\.|[^'\\])*)'|\"((?:\\.|[^\"\\])*)\"")

Judge = Callable[[str], str | None]
"""Judges a shell line (for the strings inline code hands to a shell)."""


def first(reasons: Iterable[str | None]) -> str | None:
    """The first reason given, or None."""
    return next((reason for reason in reasons if reason is not None), None)


def code_reason(code: str, shell_line: Judge) -> str | None:
    """Why inline interpreter ``code`` is CRITICAL, or None."""
    if _DELETES.search(code):
        return "deletes files from inline code"
    if "$(" in code or "`" in code:  # a command substitution, or a Perl/Ruby shell-out
        return "runs code worked out at run time"
    if _COMPUTED_CALL.search(code):
        return "calls functions by computed names"
    if _PIPED_TO_SHELL.search(code):
        return "pipes data into a shell"
    runs = _RUNS.search(code)
    if runs and _DECODES.search(code):
        return "decodes data and runs it"
    if runs:
        # os.system("rm -rf x"), run(["rm", "-rf", "x"]) and system("r" . "m -rf x") too.
        literals = [a or b for a, b in _LITERAL.findall(code)]
        lines = [*literals, " ".join(literals), "".join(literals)]
        reason = first(shell_line(line) for line in lines if line.strip())
        if reason is not None:
            return reason
    return data_reason(code)


_SQL_DROP = re.compile(
    r"\bdrop\s+(temporary\s+)?(table|database|schema|view|index|user|role|keyspace|collection"
    r"|owned|sequence|function|procedure|trigger|materialized|tablespace|extension|type|domain)\b"
)
_SQL_OTHER = re.compile(
    r"\btruncate\s+(table\s+)?[\w\"`\[]|\balter\s+table\s+\S+\s+drop\b|\bflush(all|db)\b"
    r"|\.\s*drop(database)?\s*\(|\.\s*(deletemany|remove)\s*\(\s*\{\s*\}\s*\)"
)
_SQL_UNBOUNDED = re.compile(r"\b(delete\s+from\s+\S+|update\s+\S+\s+set\b)([^;\"'\n`]*)")


def data_reason(text: str) -> str | None:
    """Why ``text`` holds a destructive SQL, Redis or MongoDB statement, or None."""
    opened = re.sub(r"/\*!\d*", " ", text)  # MySQL runs what is inside /*! ... */
    bare = re.sub(r"/\*.*?\*/|\*/", " ", opened, flags=re.DOTALL)
    # With "--" comments cut too, and without (in a shell line "--" starts options).
    return first(
        _sql_reason(re.sub(r"\s+", " ", flat).lower())
        for flat in (bare, re.sub(r"--[^\n]*", " ", bare))
    )


def _sql_reason(flat: str) -> str | None:
    if _SQL_DROP.search(flat):
        return "drops a table or database (DROP)"
    if _SQL_OTHER.search(flat):
        return "empties or drops data (TRUNCATE, FLUSHALL, drop())"
    for statement in _SQL_UNBOUNDED.finditer(flat):
        where = re.search(r"\bwhere\b(.*)", statement.group(2))
        if where is None or _always_true(where.group(1)):
            return "deletes or changes every row (no WHERE, or one always true)"
    return None


_TAUTOLOGY = r"\(?\s*(true|1|(\w+)\s*=\s*\2)\s*\)?"


def _always_true(condition: str) -> bool:
    """``WHERE 1=1``, ``WHERE true``, ``WHERE x = x``, ``... OR 1=1``; or a condition that
    could not be read (it starts with a quote, where the statement was cut)."""
    text = condition.strip()
    return (
        not text
        or re.fullmatch(_TAUTOLOGY, text) is not None
        or re.search(rf"\bor\s+{_TAUTOLOGY}\s*(\bor\b|\)|$)", text) is not None
    )


_URL_HOST = re.compile(r"\b[a-z][a-z0-9+.-]*://(?:[^/\s'\"@]*@)?(\[[^\]]+\]|[^/\s'\":?#]+)", re.I)
_AT_COMMAND = r"(?:^|(?<=[\s|;&(`/]))({})(?=\s|$)"
_URL_CLIENTS = re.compile(
    _AT_COMMAND.format("curl|wget|http|https|xh|aria2c|axel|invoke-webrequest|iwr")
    + r"|\b(requests|urllib|httpx|aiohttp)\s*\.|\bfetch\s*\(",
    re.IGNORECASE,
)
_OTHER_CLIENTS = re.compile(
    _AT_COMMAND.format(
        "nc|ncat|netcat|socat|telnet|ssh|scp|sftp|ftp|lftp|dig|nslookup|host|ping|mail|sendmail"
    )
    + r"|\bsocket\b|\bnet\s*\.\s*connect|/dev/(tcp|udp)/|\bgit\b.*\bpush\b|\brsync\b[^;|&]*:",
    re.IGNORECASE,
)


def destinations(line: str) -> list[str]:
    """The hosts a command line may send data to: those of its URLs when it uses a URL
    client (curl, wget...), and ``"*"`` (a host that cannot be told) for any other network
    client, or a URL client with no URL to read."""
    url_client = _URL_CLIENTS.search(line) is not None
    hosts = [match.group(1) for match in _URL_HOST.finditer(line)] if url_client else []
    if _OTHER_CLIENTS.search(line) or (url_client and not hosts):
        hosts.append("*")
    return hosts
