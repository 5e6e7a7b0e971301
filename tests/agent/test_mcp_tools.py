"""MCP servers as tool sources, against a real MCP stdio server (``mcp_test_server.py``)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest

from agent_core.errors import ConfigError, ToolError, ToolTimeout
from agent_core.models import RiskLevel, Run
from agent_core.testing.channel import RecordingChannel
from agent_core.tools import Tool, ToolContext, ToolRegistry
from agent_core.tools.mcp import (
    McpConfig,
    McpServerConfig,
    McpServerState,
    McpTools,
    load_mcp_config,
    public_name,
)
from tests.support import eventually

SERVER = Path(__file__).with_name("mcp_test_server.py")
TOOLS = ["add", "echo", "fail", "grow", "pid", "slow", "text.upper"]


def server(**changes: Any) -> McpServerConfig:
    """The test server, with short deadlines unless a test changes them."""
    fields: dict[str, Any] = {
        "command": sys.executable,
        "args": [str(SERVER)],
        "timeout_seconds": 5,
        "start_timeout_seconds": 10,
    }
    return McpServerConfig.model_validate(fields | changes)


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[TextIO]:
    """Where the servers' stderr goes, so it stays out of the test output."""
    with (tmp_path / "servers.stderr").open("w") as file:
        yield file


@pytest.fixture
def context(tmp_path: Path) -> ToolContext:
    return ToolContext(
        run=Run(goal="use MCP tools", requester="U0REQUEST"),
        workspace=tmp_path,
        channel=RecordingChannel(),
    )


async def call(registry: ToolRegistry, name: str, context: ToolContext, **arguments: Any) -> str:
    """Call the registered tool ``name`` as the executor would, never waiting long."""
    tool = registry.get(name)
    assert tool is not None, f"{name} is not registered: {registry.names}"
    async with asyncio.timeout(10):
        return await tool.handler(arguments, context)


async def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_tools_are_registered_with_prefixed_names_schemas_and_risks(
    errlog: TextIO, context: ToolContext
) -> None:
    builtin = Tool(
        name="builtin",
        description="Stays.",
        input_schema={"type": "object"},
        risk=RiskLevel.LOW,
        handler=lambda arguments, context: asyncio.sleep(0, "ok"),
    )
    registry = ToolRegistry([builtin])
    config = McpConfig(servers={"demo": server(risks={"add": "low", "echo": "medium"})})

    async with McpTools(config=config, registry=registry, errlog=errlog) as mcp:
        assert mcp.failures == []
        assert mcp.running == ["demo"]
        names = sorted(public_name("demo", tool) for tool in TOOLS)
        assert registry.names == sorted([*names, "builtin"])
        add = registry.get("demo__add")
        assert add is not None
        assert add.source == "mcp:demo"
        assert add.input_schema["properties"].keys() == {"a", "b"}
        assert add.input_schema["required"] == ["a", "b"]
        assert "MCP server 'demo'" in add.description and "tool 'add'" in add.description
        risks = {tool.name: tool.risk for tool in registry if tool.source == "mcp:demo"}
        assert risks["demo__add"] is RiskLevel.LOW
        assert risks["demo__echo"] is RiskLevel.MEDIUM
        assert risks["demo__fail"] is RiskLevel.HIGH
        pid = int(await call(registry, "demo__pid", context))

    assert registry.names == ["builtin"]
    assert mcp.sources["demo"].state is McpServerState.STOPPED
    await eventually(lambda: gone(pid))


async def test_calls_are_forwarded_and_error_results_raise(
    errlog: TextIO, context: ToolContext, tmp_path: Path
) -> None:
    registry = ToolRegistry()
    config = McpConfig(servers={"demo": server(), "quick": server(timeout_seconds=0.3)})
    marker = tmp_path / "slow-started"

    async with McpTools(config=config, registry=registry, errlog=errlog):
        assert await call(registry, "demo__add", context, a=2, b=3) == "5"
        assert await call(registry, "demo__echo", context, text="héllo\nthere") == "héllo\nthere"
        upper = public_name("demo", "text.upper")
        assert await call(registry, upper, context, text="shout") == "SHOUT"

        with pytest.raises(ToolError, match="deliberate failure") as failed:
            await call(registry, "demo__fail", context)
        assert failed.value.tool == "demo__fail"

        with pytest.raises(ToolTimeout) as late:
            await call(registry, "quick__slow", context, seconds=30)
        assert late.value.timeout_seconds == 0.3
        assert await call(registry, "quick__add", context, a=1, b=1) == "2"

        in_flight = asyncio.create_task(
            call(registry, "demo__slow", context, seconds=30, marker=str(marker))
        )
        await eventually(lambda: asyncio.sleep(0, marker.exists()))

    with pytest.raises(ToolError, match="stopped during the call"):
        async with asyncio.timeout(5):
            await in_flight


async def test_servers_that_cannot_start_are_reported_and_the_others_work(
    errlog: TextIO, context: ToolContext, caplog: pytest.LogCaptureFixture
) -> None:
    taken = Tool(
        name="clash__echo",
        description="A built-in that owns the name first.",
        input_schema={"type": "object"},
        risk=RiskLevel.LOW,
        handler=lambda arguments, context: asyncio.sleep(0, "mine"),
    )
    registry = ToolRegistry([taken])
    config = McpConfig(
        servers={
            "ghost": McpServerConfig(command="/nonexistent/airlock-mcp-server"),
            # Reads stdin and never answers, so its start-up deadline runs out.
            "mute": server(args=["-c", "import sys; sys.stdin.read()"], start_timeout_seconds=0.3),
            "clash": server(),
            "demo": server(),
        }
    )

    with caplog.at_level(logging.WARNING, logger="agent_core.tools.mcp"):
        async with McpTools(config=config, registry=registry, errlog=errlog) as mcp:
            assert mcp.running == ["demo"]
            reasons = {failure.server: failure.reason for failure in mcp.failures}
            assert reasons.keys() == {"ghost", "mute", "clash"}
            assert "No such file or directory" in reasons["ghost"]
            assert "timed out" in reasons["mute"]
            assert "clash__echo" in reasons["clash"]
            assert {failure.phase for failure in mcp.failures} == {"start"}
            assert mcp.sources["ghost"].state is McpServerState.FAILED
            assert await call(registry, "demo__echo", context, text="still here") == "still here"
            assert not [name for name in registry.names if name.startswith(("ghost", "mute"))]
            assert [tool.name for tool in registry if tool.name.startswith("clash")] == [
                "clash__echo"
            ]

    warned = {getattr(record, "mcp_server", None) for record in caplog.records}
    assert {"ghost", "mute", "clash"} <= warned


async def test_a_killed_server_loses_its_tools_and_its_call_fails(
    errlog: TextIO, context: ToolContext, tmp_path: Path
) -> None:
    registry = ToolRegistry()
    config = McpConfig(servers={"victim": server(), "survivor": server()})

    async with McpTools(config=config, registry=registry, errlog=errlog) as mcp:
        pid = int(await call(registry, "victim__pid", context))
        held = registry.get("victim__echo")
        assert held is not None
        marker = tmp_path / "slow-started"
        in_flight = asyncio.create_task(
            call(registry, "victim__slow", context, seconds=30, marker=str(marker))
        )
        try:
            await eventually(lambda: asyncio.sleep(0, marker.exists()))
            os.kill(pid, signal.SIGKILL)
            async with asyncio.timeout(5):
                with pytest.raises(ToolError, match="died"):
                    await in_flight
        finally:
            in_flight.cancel()

        assert not [name for name in registry.names if name.startswith("victim")]
        assert mcp.running == ["survivor"]
        [failure] = mcp.failures
        assert (failure.server, failure.phase) == ("victim", "run")
        with pytest.raises(ToolError, match="not running"):
            await held.handler({"text": "anyone?"}, context)
        assert await call(registry, "survivor__add", context, a=20, b=22) == "42"


def test_the_config_file_is_parsed_with_high_risk_by_default(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps({"servers": {"fs": {"command": "mcp-fs", "risks": {"read": "low"}}}})
    )

    config = load_mcp_config(path)

    fs = config.servers["fs"]
    assert fs.default_risk is RiskLevel.HIGH
    assert fs.risks == {"read": RiskLevel.LOW}
    assert (fs.args, fs.env, fs.timeout_seconds) == ([], {}, 30.0)
    # Built outside any event loop, as an entry point may; nothing starts until entered.
    assert McpTools(config=config, registry=ToolRegistry()).running == []


def test_an_invalid_config_file_raises_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "servers": {
                    "bad name!": {"command": "x"},
                    "fs": {"args": "not-a-list", "default_risk": "extreme", "colour": "red"},
                }
            }
        )
    )

    with pytest.raises(ConfigError) as caught:
        load_mcp_config(path)

    problems = caught.value.problems
    assert all(line.startswith(f"{path}: ") and "\n" not in line for line in problems)
    joined = "\n".join(problems)
    for where in ("bad name!", "fs.command", "fs.args", "fs.default_risk", "fs.colour"):
        assert where in joined
    assert len(problems) == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{not json", "Invalid JSON"), ("{}", "servers: Field required")],
)
def test_a_broken_config_file_raises_config_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(text)

    with pytest.raises(ConfigError, match=expected):
        load_mcp_config(path)

    with pytest.raises(ConfigError, match="cannot read"):
        load_mcp_config(tmp_path / "missing.json")


def test_public_names_fit_the_messages_api_pattern() -> None:
    assert public_name("fs", "read_file") == "fs__read_file"
    dotted, underscored = public_name("fs", "read.file"), public_name("fs", "read_file")
    long = public_name("fs", "x" * 100)
    for name in (dotted, long):
        assert len(name) <= 64 and name.replace("_", "").replace("-", "").isalnum()
    assert dotted != underscored
    assert dotted.startswith("fs__read_file_")


async def test_a_servers_tool_list_is_listed_again_when_its_ttl_runs_out(
    errlog: TextIO, context: ToolContext
) -> None:
    registry = ToolRegistry([])
    config = McpConfig(servers={"demo": server(tools_ttl_seconds=0.2)})
    async with McpTools(config=config, registry=registry, errlog=errlog):
        assert "demo__extra" not in registry
        assert await call(registry, "demo__grow", context) == "grown"

        async def listed_again() -> bool:
            return "demo__extra" in registry

        await eventually(listed_again, timeout=10)
        assert await call(registry, "demo__extra", context) == "extra"
        assert "demo__add" in registry  # the others stayed, with no gap
