"""``@tool``: an annotated ``async def`` becomes a :class:`Tool`.

The JSON Schema comes from the type hints (through pydantic), the descriptions from the
docstring: its first paragraph describes the tool, its Google-style ``Args:`` section the
parameters. A keyword-only ``context`` parameter receives the :class:`ToolContext` and never
appears in the schema.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agent_core.errors import ToolError
from agent_core.models import RiskLevel
from agent_core.tools.base import ArgumentsCheck, Destinations, RiskRule, Tool, ToolContext

__all__ = ["ToolFunction", "parse_docstring", "tool"]

ToolFunction = Callable[..., Awaitable[str]]
"""What ``@tool`` decorates: ``async def f(arg: int, ..., *, context: ToolContext) -> str``."""

_CONTEXT = "context"
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?):\s*$")
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
# Prefixed names keep parameters such as ``json`` or ``schema`` from shadowing BaseModel.
_PREFIX = "p_"
_ARG_HEADERS = ("Args:", "Arguments:", "Parameters:")


def tool(
    *,
    risk: RiskLevel,
    name: str | None = None,
    timeout_seconds: float | None = None,
    idempotent: bool = False,
    risk_for: RiskRule | None = None,
    preview: Callable[[dict[str, Any]], Awaitable[str]] | None = None,
    grantable: bool = False,
    grantable_for: ArgumentsCheck | None = None,
    reads_private_data: bool = False,
    destinations: Destinations | None = None,
) -> Callable[[ToolFunction], Tool]:
    """Turn the decorated ``async def`` into a :class:`Tool` with the given risk and limits.

    ``risk_for``, ``grantable``, ``grantable_for``, ``reads_private_data`` and ``destinations``
    declare what the risk gate needs to know (see :class:`Tool`).
    """

    def build(function: ToolFunction) -> Tool:
        tool_name = name or function.__name__
        if not _NAME.match(tool_name):
            raise ValueError(f"{tool_name!r} is not a valid tool name")
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"tool {tool_name!r} must be an async function")
        summary, arg_docs = parse_docstring(inspect.getdoc(function) or "")
        if not summary:
            raise TypeError(f"tool {tool_name!r} needs a docstring: the model reads it")
        model, wants_context = _arguments_model(function, tool_name, arg_docs)
        return Tool(
            name=tool_name,
            description=summary,
            input_schema=_schema(model),
            risk=risk,
            handler=_handler(function, tool_name, model, wants_context=wants_context),
            risk_for=risk_for,
            preview=preview,
            timeout_seconds=timeout_seconds,
            idempotent=idempotent,
            grantable=grantable,
            grantable_for=grantable_for,
            reads_private_data=reads_private_data,
            destinations=destinations,
        )

    return build


def parse_docstring(docstring: str) -> tuple[str, dict[str, str]]:
    """The first paragraph (on one line) and the ``Args:`` descriptions of a Google docstring."""
    lines = inspect.cleandoc(docstring).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line.strip()):
            break
        summary.append(line.strip())
    return " ".join(summary), _arg_descriptions(lines)


def _arg_descriptions(lines: list[str]) -> dict[str, str]:
    section = _args_section(lines)
    entries = [line for line in section if line.strip()]
    indent = _indent(entries[0]) if entries else 0
    described: dict[str, list[str]] = {}
    current = ""
    for line in entries:
        match = _ARG_LINE.match(line.strip())
        if match and _indent(line) == indent:
            current = match.group(1).lstrip("*")
            described[current] = [match.group(2)]
        elif current:
            described[current].append(line.strip())
    return {arg: " ".join(words).strip() for arg, words in described.items()}


def _args_section(lines: list[str]) -> list[str]:
    """The lines under ``Args:``, up to the next line that is not indented."""
    for start, line in enumerate(lines):
        if line.strip() in _ARG_HEADERS:
            body = lines[start + 1 :]
            end = next(
                (i for i, rest in enumerate(body) if rest.strip() and not _indent(rest)), None
            )
            return body[:end]
    return []


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _arguments_model(
    function: ToolFunction, tool_name: str, arg_docs: dict[str, str]
) -> tuple[type[BaseModel], bool]:
    hints = typing.get_type_hints(function, include_extras=True)
    fields: dict[str, Any] = {}
    wants_context = False
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name == _CONTEXT:
            if parameter.kind is not parameter.KEYWORD_ONLY:
                raise TypeError(f"tool {tool_name!r}: 'context' must be keyword-only")
            wants_context = True
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"tool {tool_name!r}: *args and **kwargs have no schema")
        default = ... if parameter.default is parameter.empty else parameter.default
        field = Field(default, alias=parameter.name, description=arg_docs.get(parameter.name))
        fields[_PREFIX + parameter.name] = (hints.get(parameter.name, Any), field)
    config = ConfigDict(extra="forbid", populate_by_name=False)
    model: type[BaseModel] = create_model(f"{tool_name}_arguments", __config__=config, **fields)
    return model, wants_context


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """The arguments schema without pydantic's generated titles (noise for the model)."""
    schema = model.model_json_schema(by_alias=True)
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


def _handler(
    function: ToolFunction, tool_name: str, model: type[BaseModel], *, wants_context: bool
) -> Callable[[dict[str, Any], ToolContext], Awaitable[str]]:
    async def handle(arguments: dict[str, Any], context: ToolContext) -> str:
        try:
            parsed = model.model_validate(arguments)
        except ValidationError as error:
            raise ToolError(tool_name, f"invalid arguments: {error}") from None
        kwargs = {
            key.removeprefix(_PREFIX): getattr(parsed, key) for key in type(parsed).model_fields
        }
        if wants_context:
            kwargs[_CONTEXT] = context
        return await function(**kwargs)

    return handle
