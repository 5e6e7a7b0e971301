"""What Slack refuses: the Block Kit limits, checked where Slack checks them.

The stand-in answers a message or a view that breaks a documented limit the way Slack does,
so a bot that builds an unpostable card finds out in the tests, not in production:

- a message whose blocks break a limit: ``invalid_blocks``, with ``errors`` and
  ``response_metadata.messages`` naming the JSON pointer (``[ERROR] must be less than 3001
  characters [json-pointer:/blocks/0/text/text]``), as Slack answers;
- a message whose blocks hold more than 12,000 characters of text in all: ``msg_blocks_too_long``
  (undocumented; Slack's maintainers give that figure in slackapi/bolt-js#2509 and #2867);
- message ``text`` over 40,000 characters: ``msg_too_long``;
- ``markdown`` blocks holding more than 12,000 characters in all (the markdown block's
  documented cumulative limit): ``invalid_blocks``; a ``context_actions`` block takes 1 to 5
  ``feedback_buttons`` or ``icon_button`` elements, each button's text 75 characters and
  value 2,000 (docs.slack.dev/reference/block-kit/blocks/context-actions-block,
  block-elements/feedback-buttons-element);
- a view that breaks a limit: ``invalid_arguments`` with the same messages; over 250 kB:
  ``view_too_large`` (views.open's documented error).

The numbers, from docs.slack.dev/reference/block-kit (blocks/*, block-elements/*,
composition-objects/*) and docs.slack.dev/reference/views/modal-views.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["markdown_problems", "message_error", "view_error"]

JsonDict = dict[str, Any]

MESSAGE_BLOCKS = 50
"""Blocks in one message ("up to 50 blocks in each message")."""
VIEW_BLOCKS = 100
"""Blocks in a modal or a Home tab."""
MESSAGE_TEXT = 40_000
"""Characters of a message's ``text`` (Slack truncates or refuses beyond)."""
BLOCKS_TEXT = 12_000
"""Characters of text across all the blocks of one message."""
MARKDOWN_TEXT = 12_000
"""Characters across all the ``markdown`` blocks of one payload; also one ``markdown_text``."""
VIEW_BYTES = 250_000
"""Size of a view payload (views.open: ``view_too_large``)."""

_LIMITS = {
    "block_id": 255,
    "header": 150,
    "section": 3000,
    "section_field": 2000,
    "section_fields": 10,
    "context_text": 3000,
    "context_elements": 10,
    "actions_elements": 25,
    "button_text": 75,
    "button_value": 2000,
    "url": 3000,
    "action_id": 255,
    "confirm_title": 100,
    "confirm_text": 300,
    "confirm_button": 30,
    "input_label": 2000,
    "input_hint": 2000,
    "input_value": 3000,
    "placeholder": 150,
    "view_title": 24,
    "view_button": 24,
    "private_metadata": 3000,
    "callback_id": 255,
    "external_id": 255,
}

Problems = list[str]


def message_error(args: JsonDict) -> JsonDict | None:
    """Slack's answer to a chat.postMessage / chat.update / chat.postEphemeral it refuses."""
    text = args.get("text")
    if isinstance(text, str) and _size(text) > MESSAGE_TEXT:
        return {"ok": False, "error": "msg_too_long"}
    blocks = args.get("blocks")
    if blocks is None:
        return None
    problems: Problems = []
    if not isinstance(blocks, list):
        problems.append("must be an array [json-pointer:/blocks]")
    else:
        if len(blocks) > MESSAGE_BLOCKS:
            problems.append(f"no more than {MESSAGE_BLOCKS} items allowed [json-pointer:/blocks]")
        for i, block in enumerate(blocks):
            problems += _block(block, f"/blocks/{i}")
        problems += markdown_problems(blocks)
    if problems:
        return _invalid("invalid_blocks", problems)
    if _text_length(blocks) > BLOCKS_TEXT:
        return {"ok": False, "error": "msg_blocks_too_long"}
    return None


def markdown_problems(blocks: list[Any]) -> Problems:
    """The markdown blocks of one payload over their cumulative limit."""
    total = sum(_size(b.get("text") or "") for b in blocks if _is(b, "markdown"))
    if total > MARKDOWN_TEXT:
        return [f"markdown blocks must be less than {MARKDOWN_TEXT + 1} characters in total "
                "[json-pointer:/blocks]"]  # fmt: skip
    return []


def view_error(view: Any) -> JsonDict | None:
    """Slack's answer to a views.open / update / push / publish whose view it refuses."""
    if not isinstance(view, dict):
        return _invalid("invalid_arguments", ["must be an object [json-pointer:/view]"])
    if len(json.dumps(view, ensure_ascii=False).encode()) > VIEW_BYTES:
        return {"ok": False, "error": "view_too_large"}
    problems = _view(view)
    return _invalid("invalid_arguments", problems) if problems else None


def _invalid(error: str, problems: Problems) -> JsonDict:
    return {
        "ok": False,
        "error": error,
        "errors": problems,
        "response_metadata": {"messages": [f"[ERROR] {p}" for p in problems]},
    }


def _view(view: JsonDict) -> Problems:
    problems: Problems = []
    kind = view.get("type")
    if kind not in ("modal", "home"):
        problems.append("must be modal or home [json-pointer:/view/type]")
    if kind == "modal" or "title" in view:
        problems += _text(view.get("title"), "/view/title", _LIMITS["view_title"], plain=True)
    for key in ("submit", "close"):
        if key in view:
            problems += _text(view[key], f"/view/{key}", _LIMITS["view_button"], plain=True)
    for key in ("private_metadata", "callback_id", "external_id"):
        problems += _string(view.get(key), f"/view/{key}", _LIMITS[key])
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not 0 < len(blocks) <= VIEW_BLOCKS:
        problems.append(f"must have 1 to {VIEW_BLOCKS} items [json-pointer:/view/blocks]")
        return problems
    for i, block in enumerate(blocks):
        problems += _block(block, f"/view/blocks/{i}")
    if kind == "modal" and "submit" not in view and any(_is(b, "input") for b in blocks):
        problems.append("submit is required with input blocks [json-pointer:/view/submit]")
    return problems


def _is(block: Any, kind: str) -> bool:
    return isinstance(block, dict) and block.get("type") == kind


def _block(block: Any, at: str) -> Problems:
    if not isinstance(block, dict):
        return [f"must be an object [json-pointer:{at}]"]
    problems = _string(block.get("block_id"), f"{at}/block_id", _LIMITS["block_id"])
    kind = block.get("type")
    check = _BLOCKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        return [*problems, f"unsupported block type [json-pointer:{at}/type]"]
    return problems + check(block, at)


def _header(block: JsonDict, at: str) -> Problems:
    return _text(block.get("text"), f"{at}/text", _LIMITS["header"], plain=True)


def _section(block: JsonDict, at: str) -> Problems:
    fields = block.get("fields")
    if "text" not in block and not fields:
        return [f"must provide text or fields [json-pointer:{at}]"]
    problems: Problems = []
    if "text" in block:
        problems += _text(block["text"], f"{at}/text", _LIMITS["section"])
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > _LIMITS["section_fields"]:
            problems.append(f"no more than 10 items allowed [json-pointer:{at}/fields]")
        else:
            for i, item in enumerate(fields):
                problems += _text(item, f"{at}/fields/{i}", _LIMITS["section_field"])
    if "accessory" in block:
        problems += _element(block["accessory"], f"{at}/accessory")
    return problems


def _context(block: JsonDict, at: str) -> Problems:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 0 < len(elements) <= _LIMITS["context_elements"]:
        return [f"must have 1 to 10 items [json-pointer:{at}/elements]"]
    problems: Problems = []
    for i, element in enumerate(elements):
        if _is(element, "image"):
            continue
        problems += _text(element, f"{at}/elements/{i}", _LIMITS["context_text"])
    return problems


def _actions(block: JsonDict, at: str) -> Problems:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 0 < len(elements) <= _LIMITS["actions_elements"]:
        return [f"must have 1 to 25 items [json-pointer:{at}/elements]"]
    problems: Problems = []
    for i, element in enumerate(elements):
        problems += _element(element, f"{at}/elements/{i}")
    return problems


def _input(block: JsonDict, at: str) -> Problems:
    problems = _text(block.get("label"), f"{at}/label", _LIMITS["input_label"], plain=True)
    if "hint" in block:
        problems += _text(block["hint"], f"{at}/hint", _LIMITS["input_hint"], plain=True)
    return problems + _element(block.get("element"), f"{at}/element")


def _nothing(block: JsonDict, at: str) -> Problems:
    return []


def _markdown(block: JsonDict, at: str) -> Problems:
    text = block.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be at least 1 character [json-pointer:{at}/text]"]
    if _size(text) > MARKDOWN_TEXT:
        return [f"must be less than {MARKDOWN_TEXT + 1} characters [json-pointer:{at}/text]"]
    return []


def _context_actions(block: JsonDict, at: str) -> Problems:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 0 < len(elements) <= 5:
        return [f"must have 1 to 5 items [json-pointer:{at}/elements]"]
    problems: Problems = []
    for i, element in enumerate(elements):
        where = f"{at}/elements/{i}"
        if _is(element, "feedback_buttons"):
            problems += _string(element.get("action_id"), f"{where}/action_id",
                                _LIMITS["action_id"])  # fmt: skip
            for key in ("positive_button", "negative_button"):
                problems += _feedback_button(element.get(key), f"{where}/{key}")
        elif _is(element, "icon_button"):
            problems += _element({**element, "type": "button"}, where)
        else:
            problems.append(f"must be feedback_buttons or icon_button [json-pointer:{where}/type]")
    return problems


def _feedback_button(button: Any, at: str) -> Problems:
    if not isinstance(button, dict):
        return [f"is required [json-pointer:{at}]"]
    problems = _text(button.get("text"), f"{at}/text", _LIMITS["button_text"], plain=True)
    value = button.get("value")
    if not isinstance(value, str) or not value:
        problems.append(f"is required [json-pointer:{at}/value]")
    problems += _string(value, f"{at}/value", _LIMITS["button_value"])
    return problems + _string(button.get("accessibility_label"), f"{at}/accessibility_label",
                              _LIMITS["button_text"])  # fmt: skip


_BLOCKS = {
    "header": _header,
    "section": _section,
    "context": _context,
    "actions": _actions,
    "input": _input,
    "divider": _nothing,
    "rich_text": _nothing,
    "image": _nothing,
    "markdown": _markdown,
    "context_actions": _context_actions,
}


def _element(element: Any, at: str) -> Problems:
    if not isinstance(element, dict):
        return [f"must be an object [json-pointer:{at}]"]
    problems = _string(element.get("action_id"), f"{at}/action_id", _LIMITS["action_id"])
    kind = element.get("type")
    if kind == "button":
        problems += _text(element.get("text"), f"{at}/text", _LIMITS["button_text"], plain=True)
        problems += _string(element.get("value"), f"{at}/value", _LIMITS["button_value"])
        problems += _string(element.get("url"), f"{at}/url", _LIMITS["url"])
        if element.get("style") not in (None, "primary", "danger"):
            problems.append(f"must be primary or danger [json-pointer:{at}/style]")
        if "confirm" in element:
            problems += _confirm(element["confirm"], f"{at}/confirm")
    elif kind == "plain_text_input":
        problems += _string(element.get("initial_value"), f"{at}/initial_value",
                            _LIMITS["input_value"])  # fmt: skip
        for key in ("max_length", "min_length"):
            value = element.get(key)
            if value is not None and not (isinstance(value, int) and 0 <= value <= 3000):
                problems.append(f"must be between 0 and 3000 [json-pointer:{at}/{key}]")
        if "placeholder" in element:
            problems += _text(element["placeholder"], f"{at}/placeholder",
                              _LIMITS["placeholder"], plain=True)  # fmt: skip
    return problems


def _confirm(confirm: Any, at: str) -> Problems:
    if not isinstance(confirm, dict):
        return [f"must be an object [json-pointer:{at}]"]
    problems = _text(confirm.get("title"), f"{at}/title", _LIMITS["confirm_title"], plain=True)
    problems += _text(confirm.get("text"), f"{at}/text", _LIMITS["confirm_text"])
    for key in ("confirm", "deny"):
        problems += _text(confirm.get(key), f"{at}/{key}", _LIMITS["confirm_button"], plain=True)
    return problems


def _text(obj: Any, at: str, limit: int, *, plain: bool = False) -> Problems:
    if not isinstance(obj, dict):
        return [f"must be a text object [json-pointer:{at}]"]
    allowed = ("plain_text",) if plain else ("plain_text", "mrkdwn")
    if obj.get("type") not in allowed:
        return [f"must be one of {', '.join(allowed)} [json-pointer:{at}/type]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be at least 1 character [json-pointer:{at}/text]"]
    if _size(text) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{at}/text]"]
    return []


def _string(value: Any, at: str, limit: int) -> Problems:
    if value is None:
        return []
    if not isinstance(value, str):
        return [f"must be a string [json-pointer:{at}]"]
    if _size(value) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{at}]"]
    return []


def _text_length(value: Any) -> int:
    """Characters of every ``text`` string in ``value`` (the blocks of one message)."""
    if isinstance(value, dict):
        own = value.get("text")
        size = _size(own) if isinstance(own, str) else 0
        return size + sum(_text_length(v) for k, v in value.items() if k != "text" or
                          not isinstance(v, str))  # fmt: skip
    if isinstance(value, list):
        return sum(_text_length(v) for v in value)
    return 0


def _size(text: str) -> int:
    """Length as Slack's clients count it: in UTF-16 code units (an emoji may count two)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
