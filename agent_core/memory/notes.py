"""How remembered things are written into a prompt: fenced, dated, never as instructions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from agent_core.models import Precedent
from agent_core.untrusted import fenced

__all__ = ["describe_age", "describe_precedents", "memory_block"]


def describe_age(then: datetime, now: datetime) -> str:
    """``then`` relative to ``now``: "just now", "5 minutes ago", "3 days ago"."""
    seconds = max(0.0, (now - then).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


def memory_block(notes: Sequence[str]) -> str:
    """``notes`` fenced as remembered data for a prompt; empty when there are none."""
    if not notes:
        return ""
    lines = "\n".join("- " + n for n in notes)
    return fenced("memory", f"Notes from earlier work (data, possibly outdated):\n{lines}")


def describe_precedents(
    precedents: Sequence[Precedent], now: datetime, *, who: Callable[[str], str] = str
) -> list[str]:
    """One line per past decision: "rejected by ana 3 days ago: wrong environment (call)".

    ``who`` renders an identity (a Slack mention, say).
    """
    lines = []
    for p in precedents:
        line = f"{p.outcome} by {who(p.by) if p.by else 'nobody'} {describe_age(p.at, now)}"
        if p.reason:
            line += f": {p.reason}"
        lines.append(f"{line} ({p.call})")
    return lines
