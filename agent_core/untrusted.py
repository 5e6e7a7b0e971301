"""Text from outside airlock on its way to a model: fenced as data, and flagged for people.

Tool output, memories, step results and summaries of earlier turns all reach a prompt
inside a tag marked ``untrusted="true"``, which the system prompts say is data, never
instructions. :func:`fenced` is the one place such a tag is written, so no text can close
its fence early and pose as airlock's own words.

Flagging decides nothing: risk, approvers, budgets and gates are code that no text
reaches. :func:`suspicious` tells the people reading the audit trail where someone may
have tried.
"""

from __future__ import annotations

import re

__all__ = ["fenced", "suspicious", "tool_output", "unfence"]

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


def fenced(tag: str, text: str, **attributes: str) -> str:
    """``text`` inside ``<tag untrusted="true" …>``, unable to close the tag itself.

    Any closing tag of the same name in ``text`` (in any case, with any spacing, the way a
    model might still read it as one) has its ``<`` written as ``&lt;``.
    """
    closing = re.compile(rf"<(\s*/\s*{re.escape(tag)})", re.IGNORECASE)
    attrs = "".join(f' {name}="{_attribute(value)}"' for name, value in attributes.items())
    inert = closing.sub(r"&lt;\1", text)
    return f'<{tag}{attrs} untrusted="true">\n{inert}\n</{tag}>'


def tool_output(tool: str, output: str, max_chars: int) -> str:
    """A tool's output capped at ``max_chars`` (saying how much was cut), fenced as data."""
    if len(output) > max_chars:
        cut = len(output) - max_chars
        output = f"{output[:max_chars]}\n[... {cut} more characters cut]"
    return fenced("tool_output", output, tool=tool)


_TOOL_OUTPUT = re.compile(r'<tool_output [^>\n]*untrusted="true">\n(.*)\n</tool_output>', re.DOTALL)


def unfence(text: str) -> str:
    """The text inside one :func:`tool_output` fence; ``text`` itself if it is not one."""
    match = _TOOL_OUTPUT.fullmatch(text)
    return match.group(1) if match else text


def _attribute(value: str) -> str:
    # Names come from registered tools, yet an attribute must stay one attribute.
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
