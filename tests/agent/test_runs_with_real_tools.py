"""Runs that use the real built-in command tool and a real MCP server through the executor."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from agent_core.approvals import Refused
from agent_core.models import RunStatus
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)
from agent_core.tools import ToolRegistry
from agent_core.tools.builtins import run_command_tool
from agent_core.tools.mcp import McpConfig, McpServerConfig, McpTools
from tests.agent.conftest import Harness
from tests.processes import host_pid
from tests.support import eventually

MCP_SERVER = Path(__file__).with_name("mcp_test_server.py")


def plan(tools: list[str], risk: str = "low") -> Reply:
    subtask = {"id": "s1", "description": "do it", "required_tools": tools, "depends_on": [],
               "risk_level": risk}  # fmt: skip
    return tool_use_reply("submit_plan", {"subtasks": [subtask]})


def process_gone(pid: int) -> bool:
    """No such process, or only its zombie is left (this sandbox's init may not reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


async def test_killing_a_run_terminates_its_running_command(
    harness_factory: Callable[..., Awaitable[Harness]], anthropic: AnthropicStandIn, tmp_path: Path
) -> None:
    registry = ToolRegistry([run_command_tool(workspace=tmp_path, timeout_seconds=60)])
    harness = await harness_factory(registry=registry)
    anthropic.enqueue(
        plan(["run_command"], risk="high"),
        tool_use_reply("run_command", {"command": "echo $$ > x.tmp; mv x.tmp shell.pid; sleep 30"}),
    )
    run = await harness.start("wait a while")
    pid_file = tmp_path / "shell.pid"

    async def started() -> bool:
        return pid_file.exists() and pid_file.read_text().strip().isdigit()

    await eventually(started, timeout=15)
    pid = host_pid(int(pid_file.read_text()), tmp_path)
    assert not isinstance(await harness.control.kill(run.id, by="U0ADMIN"), Refused)
    assert (await harness.finished(run.id)).status is RunStatus.KILLED

    async def terminated() -> bool:
        return process_gone(pid)

    await eventually(terminated, timeout=10)


@pytest.fixture
async def mcp(tmp_path: Path) -> AsyncIterator[tuple[ToolRegistry, McpTools]]:
    registry = ToolRegistry()
    config = McpConfig(
        servers={"test": McpServerConfig(command=sys.executable, args=[str(MCP_SERVER)],
                                         default_risk="low", timeout_seconds=5)}
    )  # fmt: skip
    with (tmp_path / "mcp.stderr").open("w") as errlog:
        async with McpTools(config=config, registry=registry, errlog=errlog) as tools:
            yield registry, tools


async def test_an_mcp_tool_is_called_and_a_dead_server_does_not_crash_the_run(
    harness_factory: Callable[..., Awaitable[Harness]],
    anthropic: AnthropicStandIn,
    mcp: tuple[ToolRegistry, McpTools],
) -> None:
    registry, _ = mcp
    assert "test__echo" in registry

    async def kill_the_server(request: RecordedRequest) -> Reply:
        fenced = request.tool_results()[0]["content"]
        os.kill(int(fenced.split("\n")[1]), signal.SIGKILL)  # the fence's one line of output

        async def withdrawn() -> bool:
            return "test__echo" not in registry

        await eventually(withdrawn, timeout=10)
        return tool_use_reply("test__echo", {"text": "still there?"})

    anthropic.enqueue(
        plan(["test__echo", "test__pid"]),
        tool_use_reply("test__echo", {"text": "hello"}),
        tool_use_reply("test__pid", {}),
        kill_the_server,
        text_reply("the MCP server went away"),
    )
    harness = await harness_factory(registry=registry)
    finished = await harness.run("use the MCP server")

    assert finished.status is RunStatus.COMPLETED
    requests = [
        r for r in anthropic.message_requests() if r.body and "submit_plan" not in r.tool_names
    ]
    echoed = requests[1].tool_results()[0]
    assert not echoed.get("is_error") and "hello" in echoed["content"]
    after_death = requests[3].tool_results()[0]
    assert after_death["is_error"] and "unknown tool 'test__echo'" in after_death["content"]
    assert "test__" not in " ".join(requests[3].tool_names)
