"""The Edit modal's text: a call's exact arguments as JSON, with secrets masked for the eye.

:func:`editable` is what the box is prefilled with: the arguments as JSON (plain text, no
Slack escaping), each secret masked with :func:`agent_core.logs.redact`, and each invisible or
direction-changing character written as a ``\\u`` escape, so the text is both visible and
exact. :func:`edited` reads a submission back: every masked value that comes back as it was
shown gets its original value again, so an unchanged submission is the identical call (the
same digest); a masked value that was changed or moved is refused rather than run with the
mask in it.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from agent_core import Approval, NotFound, Store, ToolCallSubject, redact
from bot.slack.render import hidden

__all__ = ["editable", "edited", "masked_string", "read_edit"]

_WHOLE_MASK = "[redacted]"
_MIN_FRAGMENT = 4
_DIFF_LIMIT = 10_000  # longer values are not diffed (quadratic); their mask is looked for whole


def editable(arguments: dict[str, Any]) -> str:
    """``arguments`` as the Edit box shows them."""
    text = json.dumps(_masked(arguments), indent=2, ensure_ascii=False)
    return "".join(_escaped(c) if hidden(c) else c for c in text)


async def read_edit(store: Store, approval_id: str, text: str) -> dict[str, Any] | str:
    """:func:`edited` for the approval ``approval_id``; a problem if there is no such request."""
    try:
        approval = await store.get_approval(approval_id)
    except NotFound:
        return "This request no longer exists."
    return edited(approval, text)


def edited(approval: Approval, text: str) -> dict[str, Any] | str:
    """The arguments a submitted Edit box means, or what is wrong with it (for the person)."""
    try:
        submitted = json.loads(text)
    except json.JSONDecodeError as error:
        return f"Not valid JSON: {error.msg}"
    if not isinstance(submitted, dict):
        return "The arguments are a JSON object."
    original = approval.subject.arguments if isinstance(approval.subject, ToolCallSubject) else {}
    arguments: dict[str, Any] = _restored(original, submitted)
    masks = _mask_fragments(original)
    kept = set(_strings(original))
    if any(f in s for s in _strings(arguments) if s not in kept for f in masks):
        return ("A masked secret was changed or moved. Leave it exactly as shown to keep it, "
                "or replace the whole value.")  # fmt: skip
    return arguments


def _escaped(char: str) -> str:
    """``char`` as a JSON ``\\u`` escape (a surrogate pair beyond the BMP)."""
    units = char.encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


def _masked(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {shown: _masked(value[real], real) for shown, real in _keys(value).items()}
    if isinstance(value, list):
        return [_masked(v, key) for v in value]
    if isinstance(value, str):
        return masked_string(value, key)
    return value


def masked_string(value: str, key: str | None) -> str:
    """``value`` as the Edit box shows it: masked, also where only its key shows it is a
    secret (``"password": …``)."""
    masked = redact(value)
    if key is None:
        return masked
    pair = json.dumps({key: masked}, ensure_ascii=False)
    if redact(pair) == pair:
        return masked
    try:
        found = json.loads(redact(pair))
    except json.JSONDecodeError:
        return _WHOLE_MASK
    values = list(found.values()) if isinstance(found, dict) else []
    return values[0] if len(values) == 1 and isinstance(values[0], str) else _WHOLE_MASK


def _keys(value: dict[str, Any]) -> dict[str, str]:
    """The keys of ``value`` as shown (masked, and told apart if masking made two alike) ->
    the keys themselves."""
    shown: dict[str, str] = {}
    for key in value:
        name = masked = redact(str(key))
        n = 1
        while name in shown:
            n += 1
            name = f"{masked} #{n}"
        shown[name] = key
    return shown


def _restored(original: Any, submitted: Any, key: str | None = None) -> Any:
    """``submitted`` with every value still exactly as it was shown put back as it was."""
    if isinstance(original, dict) and isinstance(submitted, dict):
        shown_keys = _keys(original)
        result: dict[str, Any] = {}
        for name, value in submitted.items():
            real = shown_keys.get(name) or name
            result[real] = _restored(original[real], value, real) if real in original else value
        return result
    if isinstance(original, list) and isinstance(submitted, list):
        return [_restored(original[i], v, key) if i < len(original) else v
                for i, v in enumerate(submitted)]  # fmt: skip
    if isinstance(original, str) and isinstance(submitted, str):
        return original if submitted == masked_string(original, key) else submitted
    return submitted


def _mask_fragments(original: Any, key: str | None = None) -> set[str]:
    """The pieces masking put into the shown values (``[redacted]``, whatever the masker)."""
    if isinstance(original, dict):
        return {f for k, v in original.items() for f in _mask_fragments(v, str(k))}
    if isinstance(original, list):
        return {f for v in original for f in _mask_fragments(v, key)}
    if not isinstance(original, str):
        return set()
    shown = masked_string(original, key)
    if shown == original:
        return set()
    if len(original) > _DIFF_LIMIT:
        return {_WHOLE_MASK}
    matcher = difflib.SequenceMatcher(a=original, b=shown, autojunk=False)
    return {shown[j1:j2] for tag, _, _, j1, j2 in matcher.get_opcodes()
            if tag in ("replace", "insert") and j2 - j1 >= _MIN_FRAGMENT}  # fmt: skip


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (str(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
