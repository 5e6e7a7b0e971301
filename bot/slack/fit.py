"""The one fitter for Block Kit's limits: nothing airlock builds is too long for Slack.

Every string and list airlock puts into a block goes through here. What does not fit is cut
visibly (``… 2,214 more characters``), never silently; text too long for one section is split
over several. The limits (docs.slack.dev/reference/block-kit/blocks/*, block-elements/*,
composition-objects/*, docs.slack.dev/reference/views/modal-views, and chat.postMessage):

- section text 3,000 characters; context 10 elements, each text 3,000; header 150;
- button text 75, value 2,000; confirm dialog title 100, text 300, buttons 30;
- plain_text_input initial_value (and max_length) 3,000; input label and hint 2,000;
- modal title, submit and close 24; private_metadata 3,000;
- 50 blocks a message, 100 a modal or Home tab; a view at most 250 kB (views.open:
  ``view_too_large``);
- a message's ``text`` is split by Slack beyond 4,000 characters and cut at 40,000;
- the blocks of one message together hold about 12,000 characters of text (undocumented;
  Slack's maintainers in slackapi/bolt-js#2509): cards stay under :data:`CARD_TEXT`;
- the ``markdown`` blocks of one message hold 12,000 characters in all
  (docs.slack.dev/reference/block-kit/blocks/markdown-block), and so does each
  ``markdown_text`` of chat.startStream / appendStream / stopStream: answers stay under
  :data:`ANSWER_TEXT` (:func:`cut_markdown`).

Lengths are counted in UTF-16 code units, as Slack's clients count them, so an emoji never
pushes a field over. Cuts never split an escape (``&amp;``) or a shown character
(``⟨U+202E⟩``), so Slack never displays half of one.
"""

from __future__ import annotations

import re

__all__ = [
    "ANSWER_TEXT",
    "BUTTON_TEXT",
    "BUTTON_VALUE",
    "CARD_TEXT",
    "CONFIRM_BUTTON",
    "CONFIRM_TEXT",
    "CONFIRM_TITLE",
    "CONTEXT_ELEMENTS",
    "CONTEXT_TEXT",
    "HEADER_TEXT",
    "INPUT_HINT",
    "INPUT_VALUE",
    "MARKDOWN_TEXT",
    "MESSAGE_BLOCKS",
    "MESSAGE_TEXT",
    "MODAL_TEXT",
    "PRIVATE_METADATA",
    "SECTION_TEXT",
    "VIEW_BLOCKS",
    "VIEW_BYTES",
    "cut",
    "cut_markdown",
    "cut_middle",
    "marker",
    "pack",
    "shorten",
    "shown_length",
    "size",
    "split",
]

SECTION_TEXT = 3000
CONTEXT_TEXT = 3000
CONTEXT_ELEMENTS = 10
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
INPUT_VALUE = 3000
INPUT_HINT = 2000
MODAL_TEXT = 24
"""A modal's title, submit and close."""
PRIVATE_METADATA = 3000
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
MESSAGE_TEXT = 4000
"""A message's ``text``: beyond this Slack splits it into several messages."""
CARD_TEXT = 9000
"""Text across the blocks of one card: well under Slack's ~12,000 for one message."""
MARKDOWN_TEXT = 12_000
"""The ``markdown`` blocks of one message together; one ``markdown_text`` of a stream."""
ANSWER_TEXT = 10_000
"""An answer in one message: under :data:`MARKDOWN_TEXT`, with room for what goes with it."""
VIEW_BYTES = 200_000
"""A view's blocks as JSON (escaped as slack_sdk sends them): well under views.open's 250 kB."""

# An escape or a shown character is one unit for the reader; a cut must not split one.
_UNIT = re.compile(r"&(?:amp|lt|gt);|⟨U\+[0-9A-F]{4,6}⟩")
_UNIT_LONGEST = 10


def size(text: str) -> int:
    """``text``'s length as Slack counts it (UTF-16 code units)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def shown_length(text: str) -> int:
    """Characters a reader sees in rendered ``text``: an escape or a ``⟨U+…⟩`` counts one."""
    return len(_UNIT.sub("x", text))


def marker(hidden: int, what: str = "characters") -> str:
    """The visible note of a cut: ``… 2,214 more characters``."""
    return f"… {hidden:,} more {what}"


def cut(text: str, limit: int, *, note: str = " ") -> str:
    """``text`` if it fits in ``limit``, else its head and a marker of what was cut.

    ``note`` goes between the head and the marker (a newline, say).
    """
    if size(text) <= limit:
        return text
    room = limit - size(note) - size(marker(shown_length(text)))
    head = text[: _fitting(text, max(room, 0))]
    return f"{head}{note}{marker(shown_length(text) - shown_length(head))}"


def cut_markdown(text: str, limit: int = ANSWER_TEXT) -> tuple[str, int]:
    """Rendered Markdown cut to ``limit`` with a visible marker, and how many characters were
    cut (0 if it fits). A code block the cut falls in is closed first, so the marker is not
    swallowed by it; the cut ends at a line end where one is near."""
    if size(text) <= limit:
        return text, 0
    room = limit - size(marker(shown_length(text))) - 12
    head = split(text, max(room, 0))[0]
    hidden = shown_length(text) - shown_length(head)
    fence = "\n```" if _open_fence(head) else ""
    return f"{head.rstrip()}{fence}\n\n_{marker(hidden)}_", hidden


def _open_fence(text: str) -> bool:
    return len(re.findall(r"^ {0,3}(?:```|~~~)", text, re.M)) % 2 == 1


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` with a plain ``…`` (for labels too short for a count)."""
    if size(text) <= limit:
        return text
    return text[: _fitting(text, limit - 1)] + "…"


def cut_middle(text: str, head: int, tail: int) -> tuple[str, int, str] | None:
    """``text`` as (head, characters cut, tail) with the head and tail in the given sizes,
    or None if the whole of it fits in ``head + tail``."""
    if size(text) <= head + tail:
        return None
    first = text[: _fitting(text, head)]
    rest = text[len(first) :]
    start = _safe_start(rest, len(rest) - _fitting(rest[::-1], tail, reverse=True))
    last = rest[start:]
    return first, shown_length(rest[:start]), last


def split(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit``, each ending at a line end where possible."""
    pieces: list[str] = []
    while size(text) > limit:
        end = _fitting(text, limit)
        newline = text.rfind("\n", 0, end)
        if newline > end // 2:
            end = newline + 1
        pieces.append(text[:end])
        text = text[end:]
    if text or not pieces:
        pieces.append(text)
    return pieces


def pack(lines: list[str], limit: int) -> list[str]:
    """``lines`` joined into as few texts of at most ``limit`` as they fit in; a line too long
    for one is split."""
    packed: list[str] = []
    for line in lines:
        for piece in split(line, limit):
            if packed and size(packed[-1]) + 1 + size(piece) <= limit:
                packed[-1] += "\n" + piece
            else:
                packed.append(piece)
    return packed


def _fitting(text: str, units: int, *, reverse: bool = False) -> int:
    """The most characters of ``text`` within ``units``, not ending inside an escape.

    With ``reverse``, ``text`` is reversed and only the length is wanted.
    """
    end = min(len(text), units)
    while end > 0 and size(text[:end]) > units:  # astral characters count two
        end -= max(1, (size(text[:end]) - units) // 2)
    if reverse:
        return end
    return _safe_end(text, end)


def _safe_end(text: str, end: int) -> int:
    """``end`` moved back to before an escape or a shown character it would split."""
    window = text[max(0, end - _UNIT_LONGEST) : end + _UNIT_LONGEST]
    offset = max(0, end - _UNIT_LONGEST)
    for found in _UNIT.finditer(window):
        start, stop = found.start() + offset, found.end() + offset
        if start < end < stop:
            return start
    return end


def _safe_start(text: str, start: int) -> int:
    """``start`` moved on to after an escape or a shown character it would split."""
    window = text[max(0, start - _UNIT_LONGEST) : start + _UNIT_LONGEST]
    offset = max(0, start - _UNIT_LONGEST)
    for found in _UNIT.finditer(window):
        first, stop = found.start() + offset, found.end() + offset
        if first < start < stop:
            return stop
    return start
