"""Edit… as a form made from the tool's JSON Schema: one box per simple argument.

A property whose schema type is ``string``, ``number``, ``integer`` or ``boolean`` gets its
own input, prefilled with exactly the call's current value; everything else (objects,
arrays, unions, and any string that is masked as a secret, holds invisible characters or is
too long for a box) stays in one raw JSON box below, as the plain Edit modal shows it
(:mod:`bot.slack.editing`). Submitting the form unchanged gives the identical call.

What the form gives back is only a proposal: the decision path checks it against the schema
and works its risk out again, exactly as for the raw JSON (an edit is a new call).
Property names and descriptions come from tool schemas (an MCP server's are not ours): they
are shown as plain text, made visible and cut, and the boxes are numbered, not named after
them. The form remembers a digest of its fields; if the tool's schema changed in between,
the submission is refused rather than read against different fields.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    InputBlock,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from agent_core import Approval, ToolCallSubject
from bot.slack.blocks import EDIT_VIEW, FIELD
from bot.slack.editing import editable, edited, masked_string
from bot.slack.fit import INPUT_HINT, INPUT_VALUE, shorten, size
from bot.slack.render import visible

__all__ = ["VALUE", "FormErrors", "FormField", "form_digest", "form_fields", "form_modal",
           "read_form"]  # fmt: skip

VALUE = "value"
"""action_id of each argument's box."""
_MAX_FIELDS = 40
_SIMPLE = frozenset({"string", "number", "integer", "boolean"})
_LEAVE_OUT = "-"


@dataclass(kw_only=True, frozen=True)
class FormField:
    """One argument with a box of its own."""

    name: str
    """The property's name in the tool's schema."""
    kind: str
    """``string``, ``number``, ``integer`` or ``boolean``."""
    required: bool
    """Whether the schema requires it."""
    description: str
    """The schema's description of it (tool text: shown visible and cut)."""
    present: bool
    """Whether the call has this argument."""
    value: Any = None
    """Its current value (when present)."""
    index: int = 0
    """Its place in the form."""

    @property
    def block_id(self) -> str:
        """The box's block id: numbered, so a name never reaches an id."""
        return f"arg:{self.index}"


@dataclass(kw_only=True, frozen=True)
class FormErrors:
    """What is wrong with a submitted form, by block id (Slack shows each under its box)."""

    errors: dict[str, str]


def form_fields(schema: dict[str, Any] | None, arguments: dict[str, Any]) -> list[FormField]:
    """The arguments of a call with ``schema`` that get a box of their own (may be none)."""
    properties = (schema or {}).get("properties")
    if not isinstance(properties, dict):
        return []
    required = set((schema or {}).get("required") or [])
    fields: list[FormField] = []
    for name, spec in properties.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if not isinstance(name, str) or kind not in _SIMPLE:
            continue
        present = name in arguments
        if present and not _fits(kind, name, arguments[name]):
            continue
        description = spec.get("description")
        fields.append(FormField(
            name=name, kind=kind, required=name in required, present=present,
            value=arguments.get(name), index=len(fields),
            description=description if isinstance(description, str) else "",
        ))  # fmt: skip
        if len(fields) == _MAX_FIELDS:
            break
    return fields


def _fits(kind: str, name: str, value: Any) -> bool:
    """Whether ``value`` can be shown in a box exactly as it is."""
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("number", "integer"):
        wanted = int if kind == "integer" else (int, float)
        return isinstance(value, wanted) and not isinstance(value, bool)
    return (
        isinstance(value, str)
        and size(value) <= INPUT_VALUE
        and visible(value) == value
        and masked_string(value, name) == value
    )


def form_digest(fields: list[FormField]) -> str:
    """What the form's boxes are, in short: checked again when it is submitted."""
    shape = json.dumps([[f.name, f.kind, f.present] for f in fields])
    return hashlib.sha256(shape.encode()).hexdigest()[:16]


def form_modal(approval: Approval, fields: list[FormField], metadata: str) -> View | None:
    """The form, or None when the rest of the call is too large for its raw JSON box."""
    arguments = approval.subject.arguments if isinstance(approval.subject, ToolCallSubject) else {}
    boxed = {f.name for f in fields}
    rest = editable({k: v for k, v in arguments.items() if k not in boxed})
    if size(rest) > INPUT_VALUE:
        return None
    hint = ("Other arguments, as JSON. Secrets are shown masked: leave a masked value as it is"
            " to keep it.")  # fmt: skip
    raw = InputBlock(block_id=FIELD, label="Other arguments (JSON)", optional=True,
                     element=PlainTextInputElement(action_id=FIELD, multiline=True,
                                                   initial_value=rest),
                     hint=PlainTextObject(text=hint))  # fmt: skip
    return View(
        type="modal", callback_id=EDIT_VIEW, title="Edit and approve", submit="Approve",
        close="Cancel", private_metadata=metadata, blocks=[*map(_box, fields), raw],
    )  # fmt: skip


def _box(field: FormField) -> InputBlock:
    label = shorten(visible(field.name), 100) + ("" if field.required else " (optional)")
    words = {"string": "Text", "number": "A number", "integer": "A whole number",
             "boolean": "Yes or no"}[field.kind]  # fmt: skip
    said = f"{words}. {visible(field.description)}" if field.description else f"{words}."
    hint = PlainTextObject(text=shorten(said, INPUT_HINT))
    return InputBlock(block_id=field.block_id, label=label, optional=True, hint=hint,
                      element=_element(field))  # fmt: skip


def _element(field: FormField) -> PlainTextInputElement | StaticSelectElement:
    if field.kind == "boolean":
        options = [Option(text="true", value="true"), Option(text="false", value="false")]
        if not field.required:
            options.append(Option(text="(leave it out)", value=_LEAVE_OUT))
        chosen = {True: options[0], False: options[1]}.get(field.value) if field.present else None
        if not field.present and not field.required:
            chosen = options[-1]
        return StaticSelectElement(action_id=VALUE, options=options, initial_option=chosen)
    if not field.present:
        return PlainTextInputElement(action_id=VALUE)
    shown = field.value if field.kind == "string" else json.dumps(field.value)
    multiline = field.kind == "string" and ("\n" in shown or size(shown) > 150)
    return PlainTextInputElement(action_id=VALUE, initial_value=shown, multiline=multiline)


def read_form(
    approval: Approval, fields: list[FormField], boxes: dict[str, str | None], raw: str | None
) -> dict[str, Any] | FormErrors:
    """The arguments the submitted form means, or what is wrong with it.

    ``boxes`` maps each argument box that came back (by block id) to what it held (None:
    empty); ``raw`` is the JSON box. A box that did not come back leaves its argument to the
    JSON box.
    """
    rest = edited(approval, raw if raw and raw.strip() else "{}")
    if isinstance(rest, str):
        return FormErrors(errors={FIELD: rest})
    errors: dict[str, str] = {}
    arguments = dict(rest)
    for field in (f for f in fields if f.block_id in boxes):
        if field.name in rest:
            errors[FIELD] = f"{shorten(visible(field.name), 100)} has its own box: set it there."
            continue
        value = _value(field, boxes[field.block_id])
        if isinstance(value, _Problem):
            errors[field.block_id] = value.text
        elif value is not _ABSENT:
            arguments[field.name] = value
    return FormErrors(errors=errors) if errors else arguments


@dataclass(frozen=True)
class _Problem:
    text: str


_ABSENT = object()


def _value(field: FormField, typed: str | None) -> Any:
    """What one box means: a value, :data:`_ABSENT` (left out), or a :class:`_Problem`."""
    if field.kind == "boolean":
        return {"true": True, "false": False}.get(typed or "", _ABSENT)
    if field.kind == "string":
        # An empty box is an empty string for an argument the call has, else left out.
        return typed if typed is not None else ("" if field.present else _ABSENT)
    if typed is None or not typed.strip():
        return _ABSENT
    try:
        number = json.loads(typed)
    except json.JSONDecodeError:
        number = None
    whole = isinstance(number, int) and not isinstance(number, bool)
    if field.kind == "integer" and not whole:
        return _Problem("A whole number, e.g. 3.")
    if not whole and not (isinstance(number, float) and math.isfinite(number)):
        return _Problem("A number, e.g. 2.5.")
    return number
