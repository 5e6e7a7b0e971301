"""``@tool``: schemas from type hints, descriptions from docstrings, the context injected."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

from agent_core.approvals import RiskPolicy
from agent_core.channel import RunEvent
from agent_core.errors import ToolError
from agent_core.models import Approval, Decision, RiskLevel, Run
from agent_core.tools.base import ToolContext
from agent_core.tools.decorator import parse_docstring, tool


class SilentChannel:
    """An OperatorChannel nobody is listening on."""

    async def notify(self, event: RunEvent) -> None:
        return None

    async def request_decision(self, approval: Approval) -> Decision:
        raise AssertionError("no decision expected")

    async def ask(self, run: Run, question: str) -> str:
        raise AssertionError("no question expected")


def make_context(workspace: Path) -> ToolContext:
    return ToolContext(
        run=Run(goal="try the decorator", requester="U012AB3CD"),
        workspace=workspace,
        channel=SilentChannel(),
    )


class Window(BaseModel):
    start: int
    end: int


@tool(risk=RiskLevel.MEDIUM, timeout_seconds=7.5, idempotent=True)
async def search_logs(
    query: str,
    limit: int = 10,
    level: Literal["info", "error"] = "error",
    tags: list[str] | None = None,
    window: Window | None = None,
    ratio: Annotated[float, Field(ge=0, le=1)] = 0.5,
    *,
    context: ToolContext,
) -> str:
    """Search the service logs
    for lines that match.

    Returns at most ``limit`` lines.

    Args:
        query: What to look for,
            as a regular expression.
        limit (int): How many lines at most.
        level: The lowest level shown.
        tags: Only lines with all of these tags.

    Returns:
        The matching lines.
    """
    window_text = f"{window.start}-{window.end}" if window else "all"
    return f"{query}|{limit}|{level}|{tags}|{window_text}|{ratio}|{context.run.goal}"


def test_the_schema_comes_from_the_type_hints() -> None:
    schema = search_logs.input_schema
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["required"] == ["query"]
    assert schema["additionalProperties"] is False
    properties = schema["properties"]
    assert list(properties) == ["query", "limit", "level", "tags", "window", "ratio"]
    assert properties["query"]["type"] == "string"
    assert properties["limit"] == {
        "type": "integer",
        "default": 10,
        "description": "How many lines at most.",
    }
    assert properties["level"]["enum"] == ["info", "error"]
    assert {"type": "array", "items": {"type": "string"}} in properties["tags"]["anyOf"]
    assert properties["ratio"]["maximum"] == 1
    assert "Window" in schema["$defs"]


def test_the_context_is_never_part_of_the_schema() -> None:
    assert "context" not in search_logs.input_schema["properties"]
    assert "context" not in search_logs.input_schema["required"]


def test_descriptions_come_from_the_docstring() -> None:
    assert search_logs.description == "Search the service logs for lines that match."
    properties = search_logs.input_schema["properties"]
    assert properties["query"]["description"] == "What to look for, as a regular expression."
    assert properties["level"]["description"] == "The lowest level shown."
    assert "description" not in properties["window"]


def test_the_tool_carries_what_the_decorator_was_given() -> None:
    assert search_logs.name == "search_logs"
    assert search_logs.risk is RiskLevel.MEDIUM
    assert search_logs.timeout_seconds == 7.5
    assert search_logs.idempotent
    assert search_logs.risk_for is None
    assert search_logs.source == "builtin"
    assert search_logs.definition()["input_schema"] is search_logs.input_schema


def test_a_schema_accepts_what_the_handler_accepts() -> None:
    validator = Draft202012Validator(search_logs.input_schema)
    assert validator.is_valid({"query": "x", "window": {"start": 1, "end": 2}})
    assert not validator.is_valid({"limit": 3})
    assert not validator.is_valid({"query": "x", "context": {}})
    assert not validator.is_valid({"query": "x", "level": "debug"})


async def test_the_handler_gets_defaults_and_the_context(tmp_path: Path) -> None:
    output = await search_logs.handler({"query": "boom"}, make_context(tmp_path))
    assert output == "boom|10|error|None|all|0.5|try the decorator"


async def test_the_handler_gets_parsed_values(tmp_path: Path) -> None:
    arguments: dict[str, Any] = {
        "query": "boom",
        "limit": 2,
        "tags": ["a", "b"],
        "window": {"start": 3, "end": 4},
    }
    output = await search_logs.handler(arguments, make_context(tmp_path))
    assert output == "boom|2|error|['a', 'b']|3-4|0.5|try the decorator"


async def test_arguments_the_schema_would_refuse_are_a_tool_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="invalid arguments"):
        await search_logs.handler({"query": "x", "ratio": 2}, make_context(tmp_path))


async def test_a_tool_without_context_and_with_odd_names(tmp_path: Path) -> None:
    def escalate(arguments: dict[str, Any]) -> RiskLevel:
        return RiskLevel.CRITICAL if arguments.get("json") == "all" else RiskLevel.LOW

    @tool(risk=RiskLevel.LOW, name="dump-json", risk_for=escalate)
    async def dump(json: str, schema: bool = False) -> str:
        """Dump something."""
        return f"{json}:{schema}"

    assert dump.name == "dump-json"
    assert list(dump.input_schema["properties"]) == ["json", "schema"]
    assert dump.input_schema["properties"]["schema"]["type"] == "boolean"
    assert await dump.handler({"json": "x", "schema": True}, make_context(tmp_path)) == "x:True"
    policy = RiskPolicy()
    assert policy.assess(dump, {"json": "all"}, private_data_read=False).level is RiskLevel.CRITICAL
    assert policy.assess(dump, {"json": "some"}, private_data_read=False).level is RiskLevel.LOW


def test_what_cannot_become_a_tool() -> None:
    def sync(x: int) -> str:
        """Synchronous."""
        return str(x)

    async def undocumented(x: int) -> str:
        return str(x)

    async def positional_context(context: ToolContext) -> str:
        """Context must be keyword-only."""
        return ""

    async def variadic(*names: str) -> str:
        """No schema for these."""
        return ""

    with pytest.raises(TypeError, match="async"):
        tool(risk=RiskLevel.LOW)(sync)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="docstring"):
        tool(risk=RiskLevel.LOW)(undocumented)
    with pytest.raises(TypeError, match="keyword-only"):
        tool(risk=RiskLevel.LOW)(positional_context)
    with pytest.raises(TypeError, match="args"):
        tool(risk=RiskLevel.LOW)(variadic)
    with pytest.raises(ValueError, match="not a valid tool name"):
        tool(risk=RiskLevel.LOW, name="has space")(undocumented)


def test_parse_docstring_reads_google_sections() -> None:
    summary, arguments = parse_docstring(
        """Fetch a page.

        Args:
            url (str): Where.
            retries: How often
                to try again.

        Raises:
            ToolError: when it fails.
        """
    )
    assert summary == "Fetch a page."
    assert arguments == {"url": "Where.", "retries": "How often to try again."}
    assert parse_docstring("Just one line.") == ("Just one line.", {})
