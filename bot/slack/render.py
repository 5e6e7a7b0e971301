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

from agent_core import redact

__all__ = [
    "BACKTICK",
    "code_block",
    "escape",
    "inert",
    "inert_code",
    "inert_markdown",
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


# -- standard Markdown (the ``markdown`` block) --------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?^ {0,3}\1[`~]*[ \t]*$", re.M | re.S)
_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
_LINK = re.compile(
    r"!?\[(?P<label>(?:[^\[\]\\\n]|\\.)*)\]"
    r"\(\s*(?P<target>[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)"
)
_REFERENCE = re.compile(r"!?\[(?P<label>(?:[^\[\]\\\n]|\\.)*)\]\[(?P<ref>[^\[\]\n]*)\]")
_DEFINITION = re.compile(r"^ {0,3}\[(?P<ref>[^\[\]\n]+)\]:[ \t]*<?(?P<target>\S+?)>?(?:[ \t]+.*)?$",
                         re.M)  # fmt: skip
_LINK_SCHEMES = ("http://", "https://", "mailto:")
_URLISH = re.compile(r"(?i)^\s*(?:[a-z][a-z0-9+.-]*:|www\.|[^\s/]+\.[a-z]{2,}(?:[/:?#]|\s*$))")
_QUOTE_MARK = re.compile(r"^( {0,3}(?:> ?)+)", re.M)


def inert_markdown(text: str) -> str:
    """Untrusted standard Markdown, ready for a ``markdown`` block: formatted, still inert.

    Headings, emphasis, lists, tables, quotes and code render as the author meant; what could
    act does not. Secrets are masked and hidden characters shown (as :func:`inert` does);
    ``<`` and ``>`` are escaped everywhere, so no mention, broadcast, user group or Slack link
    (``<@U…>``, ``<!here>``, ``<!subteam^…>``, ``<url|label>``) forms; ``&`` is escaped, so an
    entity shows as written. A link keeps its label only when the label is not itself an
    address other than the real one, and only to http, https or mailto: a disguised link
    (``[https://good](https://evil)``) shows its real target, and any other scheme is text.
    Reference links are resolved the same way, and any ``](`` this parser did not take for a
    link is broken apart, so a link Slack's parser would find where this one found none
    cannot hide its target either. Closed code blocks and spans are left as code.
    """
    text = visible(redact(text))
    definitions = {m["ref"].strip().lower(): m["target"] for m in _DEFINITION.finditer(text)}
    out: list[str] = []
    for code, piece in _code_and_prose(text):
        out.append(escape(piece) if code else _inert_prose(piece, definitions))
    return "".join(out)


def _code_and_prose(text: str) -> list[tuple[bool, str]]:
    """``text`` cut into closed code (fenced blocks, then spans) and the prose between."""
    parts: list[tuple[bool, str]] = []
    at = 0
    for fence in _FENCE.finditer(text):
        parts += _spans(text[at : fence.start()])
        parts.append((True, fence.group(0)))
        at = fence.end()
    return parts + _spans(text[at:])


def _spans(text: str) -> list[tuple[bool, str]]:
    parts: list[tuple[bool, str]] = []
    at = 0
    for span in _SPAN.finditer(text):
        parts.append((False, text[at : span.start()]))
        parts.append((True, span.group(0)))
        at = span.end()
    parts.append((False, text[at:]))
    return [p for p in parts if p[1]]


def _inert_prose(text: str, definitions: dict[str, str]) -> str:
    text = _DEFINITION.sub(lambda m: f"{m['ref']}: {m['target']}", text)
    text = _REFERENCE.sub(lambda m: _resolved(m, definitions), text)
    out: list[str] = []
    at = 0
    for link in _LINK.finditer(text):
        out.append(_escape_prose(text[at : link.start()]))
        out.append(_link(_unescape_label(link["label"]), link["target"]))
        at = link.end()
    out.append(_escape_prose(text[at:]))
    return "".join(out)


def _resolved(found: re.Match[str], definitions: dict[str, str]) -> str:
    """A reference link as an inline one, or with its brackets apart if it names nothing."""
    ref = (found["ref"] or found["label"]).strip().lower()
    target = definitions.get(ref)
    if target is None:
        return found.group(0).replace("][", "] [")
    return f"[{found['label']}]({target})"


def _escape_prose(text: str) -> str:
    """Prose outside any link: escaped, a quote's ``>`` kept, every stray ``](`` broken."""
    text = text.replace("](", "] (").replace("][", "] [")
    quoted = _QUOTE_MARK.sub(lambda m: m.group(1).replace(">", "\x00"), text)
    return escape(quoted).replace("\x00", ">")


def _unescape_label(label: str) -> str:
    return re.sub(r"\\(.)", r"\1", label)


def _link(label: str, target: str) -> str:
    """One link as it may be shown: kept, shown with its real target, or plain text."""
    shown = escape(label).replace("[", "(").replace("]", ")").replace("`", BACKTICK)
    safe_target = _url(target)
    if not target.lower().startswith(_LINK_SCHEMES):
        return f"{shown} (`{escape(target).replace('`', BACKTICK)}`)"
    if _URLISH.match(label) and _bare(label) != _bare(target):
        # A label that is an address, but not this one: the real target is what shows.
        return f"`{shown}` → [{escape(target)}]({safe_target})"
    return f"[{shown or escape(target)}]({safe_target})"


def _bare(url: str) -> str:
    found = url.strip().lower()
    for prefix in ("https://", "http://", "mailto:"):
        found = found.removeprefix(prefix)
    return found.rstrip("/")


def _url(target: str) -> str:
    """A link target Slack can neither read as markup nor end early: ``<``, ``>``, spaces,
    parentheses and backticks percent-encoded."""
    table = {"<": "%3C", ">": "%3E", " ": "%20", "(": "%28", ")": "%29", "`": "%60"}
    return "".join(table.get(c, c) for c in target)
