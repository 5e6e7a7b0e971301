"""The one way untrusted text reaches Slack: secrets masked, the invisible made visible, inert.

Whatever a model, a tool, a goal, a memory or a person wrote goes through :func:`inert`
(:func:`inert_code` is the same, named for text inside a code span or block). It

- masks secrets with :func:`agent_core.logs.redact`;
- shows every invisible or direction-changing character as ``⟨U+202E⟩`` (see
  :func:`visible`), so what an approver reads cannot be reordered, hidden or cut short;
- escapes ``&``, ``<`` and ``>`` as Slack prescribes, so no mention (``<@U…>``), broadcast
  (``<!channel>``, ``<!here>``, ``<!everyone>``), group, channel, date or link (``<url|label>``)
  it contains takes effect;
- shows a backtick as ``ˋ`` (U+02CB), so the text can neither close the code span or block
  it sits in (and have the rest read as markup) nor open one that swallows airlock's own text.

``*``, ``_`` and ``~`` are left as they are: they can only emphasise the text they are in,
never hide it or reach past a block. Mentions airlock itself means are built by
:func:`mention` from ids that match Slack's id patterns, never from text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from agent_core.logs import redact

__all__ = [
    "BACKTICK",
    "code_block",
    "escape",
    "inert",
    "inert_code",
    "json_text",
    "mention",
    "plural",
    "visible",
]

BACKTICK = "\u02cb"
"""How a backtick inside code is shown: it looks like one and closes nothing."""

# Categories that draw nothing or change the order or the flow of what is drawn: controls
# (C0 and C1, NUL, ESC), formats (zero-width characters, the bidi embeddings, overrides and
# isolates, the byte-order mark, the soft hyphen, tag characters), line and paragraph
# separators, and lone surrogates.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Letters that render as blank space (Hangul fillers, the braille blank) and the combining
# grapheme joiner, which attaches to nothing visible.
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f")
_KEPT = frozenset("\n\t")
_JSON_ESCAPE = re.compile(r"\\\\|\\u([0-9a-fA-F]{4})")
_USER = re.compile(r"[UW][A-Z0-9]{2,20}")
_GROUP = re.compile(r"S[A-Z0-9]{2,20}")


def hidden(char: str) -> bool:
    """A character that shows nothing, or changes how the characters around it are shown."""
    if char in _KEPT:
        return False
    return unicodedata.category(char) in _HIDDEN_CATEGORIES or char in _BLANK


def visible(text: str) -> str:
    """``text`` with each hidden character (see :func:`hidden`) shown as ``⟨U+XXXX⟩``.

    Newlines and tabs stay. The text that runs is unchanged; only how it is shown.
    """
    if text.isprintable() and not any(c in _BLANK for c in text):
        return text  # the common case: nothing to show
    return "".join(f"⟨U+{ord(c):04X}⟩" if hidden(c) else c for c in text)


def json_text(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON for people to read: control characters JSON would write as ``\\u0000``
    are shown as ``⟨U+0000⟩``, like every other hidden character (not yet escaped for Slack)."""

    def shown(found: re.Match[str]) -> str:
        code = found.group(1)
        if code is None or not hidden(chr(int(code, 16))):
            return found.group(0)  # an escaped backslash, or a character that shows itself
        return f"⟨U+{int(code, 16):04X}⟩"

    return _JSON_ESCAPE.sub(shown, json.dumps(value, indent=indent, ensure_ascii=False))


def escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as Slack's escapes; nothing in ``text`` is markup any more."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inert(text: str) -> str:
    """Untrusted text, ready for a Slack message: masked, visible, escaped, no backticks."""
    return escape(visible(redact(text))).replace("`", BACKTICK)


def inert_code(text: str) -> str:
    """Untrusted text for inside a code span or block (the same as :func:`inert`)."""
    return inert(text)


def code_block(rendered: str) -> str:
    """``rendered`` (from :func:`inert_code`) as a code block; Slack shows an empty one oddly."""
    return f"```{rendered or ' '}```"


def mention(identity: str) -> str:
    """How to name ``identity``: a user or user-group mention if it is such an id, else code.

    Only ids matching Slack's patterns become mentions; anything else is shown as inert code.
    """
    if _GROUP.fullmatch(identity):
        return f"<!subteam^{identity}>"
    if _USER.fullmatch(identity):
        return f"<@{identity}>"
    return f"`{inert_code(identity)}`"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 step``, ``2 steps``: a count and its noun, in the right number."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"
