"""Spotting instruction-like text in tool output, for the audit trail.

Flagging decides nothing: tool output is fenced as untrusted data whatever it says, and
risk, approvers, budgets and gates are code that no text reaches. The flags tell the
people reading the audit trail where someone may have tried.
"""

from __future__ import annotations

import re

__all__ = ["suspicious"]

_PATTERNS = {
    "ignore_instructions": r"\b(ignore|disregard|forget|override)\b.{0,40}"
    r"\b(previous|prior|above|earlier|all|your)\b.{0,30}\b(instructions?|prompts?|rules)\b",
    "role_change": r"\byou are now\b|\bnew instructions\b|\bact as (an? )?(admin|root|system)\b",
    "system_prompt": r"\bsystem prompt\b|</?system>|\[system\]",
    "approval_claim": r"\b(pre-?approved|already approved|approval (is )?not (needed|required)"
    r"|skip (the )?approvals?|risk[_ ]?level\s*[:=]\s*\"?low|budget\s*[:=]\s*unlimited)\b",
    "fence_escape": r"&lt;/(tool_output|memory)|</memory",
    "exfiltration": r"\b(send|post|upload|email|exfiltrate)\b.{0,40}"
    r"\b(tokens?|passwords?|secrets?|credentials|api[ _]keys?)\b",
}
_COMPILED = {name: re.compile(pattern, re.IGNORECASE | re.DOTALL)
             for name, pattern in _PATTERNS.items()}  # fmt: skip


def suspicious(text: str) -> list[str]:
    """The names of the instruction-like patterns ``text`` contains, in a fixed order."""
    return [name for name, pattern in _COMPILED.items() if pattern.search(text)]
