"""Building blocks of the command rules: where a path points, and small rule makers."""

from __future__ import annotations

import re
from collections.abc import Callable

from agent_core.tools.builtins._shell_words import flags, operands

__all__ = [
    "Rule",
    "after",
    "always",
    "any_word",
    "computed",
    "destination",
    "device_or_outside",
    "everywhere",
    "first_of",
    "has_flag",
    "outside",
    "paths",
]

Rule = Callable[[list[str]], str | None]
"""Why the command with these arguments is destructive, or None."""

_EVERYTHING = re.compile(r"[./*~]+")
_HARMLESS = re.compile(r"/dev/(null|zero|stdout|stderr|stdin|tty|fd/\d+)|/tmp(/.*)?")
_BLOCK_DEVICE = re.compile(
    r"/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk|mapper/|md|dm-|loop|sr|nbd|mem|kmem|port)"
)
_HOME_ROOT = re.compile(r"(~[\w-]*|\$\{?HOME\}?)/?\*?")


def outside(path: str) -> bool:
    """Outside the workspace: an absolute path (but /tmp), the home folder, or up from it."""
    if _HARMLESS.fullmatch(path):
        return False
    return path.startswith(("/", "../", "~", "$HOME", "${HOME}")) or path == ".."


def everywhere(path: str) -> bool:
    """``path`` names a folder's whole content or more: ``*``, ``.``, ``/``, ``~``, ``../..``."""
    return bool(_EVERYTHING.fullmatch(path)) or bool(_HOME_ROOT.fullmatch(path))


def device_or_outside(path: str) -> bool:
    """Writing to ``path`` overwrites a disk or a file outside the workspace."""
    return bool(_BLOCK_DEVICE.match(path)) or outside(path)


def computed(path: str) -> bool:
    """``path`` is worked out at run time (a variable or a command substitution)."""
    return "$" in path or "`" in path


def paths(reason: str, *, everything: bool = True) -> Rule:
    """Destructive when any operand is outside the workspace (or, with ``everything``, all
    of a folder)."""

    def rule(args: list[str]) -> str | None:
        hit = any(outside(p) or (everything and everywhere(p)) for p in operands(args))
        return reason if hit else None

    return rule


def destination(reason: str) -> Rule:
    """Destructive when the last operand (where it writes) is a disk or outside."""

    def rule(args: list[str]) -> str | None:
        targets = operands(args)
        return reason if targets and device_or_outside(targets[-1]) else None

    return rule


def always(reason: str) -> Rule:
    """Destructive whatever the arguments."""
    return lambda args: reason


def any_word(reason: str, *words: str) -> Rule:
    """Destructive when any argument is one of ``words`` (case ignored)."""
    wanted = {w.lower() for w in words}
    return lambda args: reason if wanted & {a.lower() for a in args} else None


def after(reason: str, first: str, *then: str) -> Rule:
    """Destructive when ``first`` is among the words and one of ``then`` follows it."""

    def rule(args: list[str]) -> str | None:
        lowered = [a.lower() for a in args]
        if first not in lowered:
            return None
        rest = lowered[lowered.index(first) + 1 :]
        return reason if not then or set(then) & set(rest) else None

    return rule


def first_of(*rules: Rule) -> Rule:
    """The first reason any of ``rules`` gives."""

    def first(args: list[str]) -> str | None:
        for rule in rules:
            reason = rule(args)
            if reason is not None:
                return reason
        return None

    return first


def has_flag(reason: str, *options: str) -> Rule:
    """Destructive when any of ``options`` is given (letters of short options, or long ones)."""
    return lambda args: reason if flags(args) & set(options) else None
