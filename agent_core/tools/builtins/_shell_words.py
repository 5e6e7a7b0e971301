"""A shell command line cut into simple commands, as far as judging its risk needs.

Not a shell: it undoes what hides a word from a reader (quotes and backslashes inside words,
``${IFS}``, ``$'\\x72'`` escapes, brace lists) and splits on the
operators that start a new command (``;``, ``&&``, ``|``, newlines, parentheses). Here-document
bodies and command substitutions are taken out whole, to be judged on their own.
"""

from __future__ import annotations

import codecs
import re
import shlex
from dataclasses import dataclass, field

__all__ = ["PROCESS_SUBSTITUTION", "Script", "SimpleCommand", "flags", "operands", "parse"]

PROCESS_SUBSTITUTION = "<(…)"
"""Stands for a ``<(...)`` argument: a file whose content is made at run time."""

_OPERATOR_CHARS = "();<>|&\n"
_IFS = re.compile(r"\$\{IFS[^}]*\}|\$IFS\b")
_ANSI_C = re.compile(r"\$'((?:\\.|[^'\\])*)'")
_HEREDOC = re.compile(
    r"<<-?[ \t]*(['\"]?)([A-Za-z_][\w-]*)\1([^\n]*)\n(.*?)(?:\n[ \t]*\2[ \t]*(?=\n|$)|\Z)",
    re.DOTALL,
)
_BRACES = re.compile(r"^\{([^{}]*,[^{}]*)\}$")


@dataclass(kw_only=True)
class SimpleCommand:
    """One command of a line: its words, its redirections, and whether a pipe feeds it."""

    words: list[str] = field(default_factory=list)
    """The command name and its arguments, quotes removed."""
    redirects: list[tuple[str, str]] = field(default_factory=list)
    """(operator, target): ``(">", "/dev/sda")``, ``("<<<", "text")``, ``("<<", "EOF")``."""
    piped_in: bool = False
    """Its standard input is the output of the command before it."""


@dataclass(kw_only=True)
class Script:
    """A command line, taken apart."""

    commands: list[SimpleCommand]
    """Its simple commands, in order."""
    heredocs: dict[str, str]
    """Here-document bodies by delimiter."""
    substitutions: list[str]
    """The text inside each ``$(...)``, backquote pair and ``<(...)``/``>(...)``."""
    text: str
    """The line after normalising, here-documents taken out."""


def parse(line: str) -> Script:
    """``line`` taken apart; ValueError when its quotes do not close."""
    text = _normalise(line)
    heredocs: dict[str, str] = {}

    def keep(match: re.Match[str]) -> str:
        heredocs[match.group(2)] = match.group(4)
        return f"<< {match.group(2)}{match.group(3)}\n"

    text = _HEREDOC.sub(keep, text)
    return Script(
        commands=_commands(_tokens(text)),
        heredocs=heredocs,
        substitutions=substitutions(text),
        text=text,
    )


def _normalise(line: str) -> str:
    text = line.replace("\\\n", "")
    text = _IFS.sub(" ", text)
    text = text.replace('$"', '"')
    return _ANSI_C.sub(_ansi_c, text)


def _ansi_c(match: re.Match[str]) -> str:
    try:
        decoded = codecs.decode(match.group(1), "unicode_escape")
    except UnicodeDecodeError:  # a broken escape: judge the text as written
        decoded = match.group(1)
    return shlex.quote(decoded)


def substitutions(text: str) -> list[str]:
    """The bodies of ``$(...)``, ``<(...)``, ``>(...)`` and backquotes in ``text``, outermost
    first (nested ones are found when the body is judged in turn)."""
    found: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "`":
            end = text.find("`", i + 1)
            end = len(text) if end < 0 else end
            found.append(text[i + 1 : end])
            i = end + 1
        elif text[i] in "$<>" and text[i + 1 : i + 2] == "(":
            end = _closing(text, i + 2)
            found.append(text[i + 2 : end])
            i = end + 1
        else:
            i += 1
    return found


def _closing(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    return len(text)


def _tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=_OPERATOR_CHARS)
    lexer.whitespace = " \t\r"
    # A "#" inside a word is no comment to the shell; reading on is the careful choice.
    lexer.commenters = ""
    lexer.whitespace_split = True
    words: list[str] = []
    for token in lexer:
        braces = _BRACES.match(token)
        words += braces.group(1).split(",") if braces else [token]
    return words


def _commands(tokens: list[str]) -> list[SimpleCommand]:
    commands = [SimpleCommand()]
    index = 0
    while index < len(tokens):
        token = tokens[index]
        current = commands[-1]
        if not _is_operator(token):
            current.words.append(token)
        elif token.endswith("(") and ("<" in token or ">" in token):
            current.words.append(PROCESS_SUBSTITUTION)
            commands.append(SimpleCommand())
        elif "<" in token or ">" in token:
            target = tokens[index + 1] if index + 1 < len(tokens) else ""
            current.redirects.append((token, "" if _is_operator(target) else target))
            index += 1 if _is_operator(target) else 2
            continue
        else:
            joined = token.rstrip("&")  # "|&" pipes stderr too; "||" is no pipe
            commands.append(SimpleCommand(piped_in=joined.endswith("|") and joined[-2:] != "||"))
        index += 1
    return [c for c in commands if c.words or c.redirects]


def _is_operator(token: str) -> bool:
    return bool(token) and all(char in _OPERATOR_CHARS for char in token)


def flags(arguments: list[str]) -> set[str]:
    """The options among ``arguments`` (up to ``--``): each letter of ``-rf`` alone, and long
    options as written up to any ``=`` (``--force``)."""
    found: set[str] = set()
    for word in arguments:
        if word == "--":
            break
        if word.startswith("--"):
            found.add(word.split("=", 1)[0])
        elif word.startswith("-") and len(word) > 1:
            found.update(word[1:])
    return found


def operands(arguments: list[str]) -> list[str]:
    """The arguments that are not options (everything after ``--``)."""
    if "--" in arguments:
        at = arguments.index("--")
        return [w for w in arguments[:at] if not w.startswith("-")] + arguments[at + 1 :]
    return [w for w in arguments if not w.startswith("-") or w == "-"]
