"""`airlock run` as a real process against the Anthropic stand-in."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from pathlib import Path

import pytest

from agent_core.store import open_store
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from tests.e2e.test_serve import clean_env
from tests.support import within

pytestmark = pytest.mark.processes

KEY = "sk-ant-cli-test"
MCP_SERVER = Path(__file__).resolve().parents[1] / "agent" / "mcp_test_server.py"


async def airlock_run(
    *args: str, server: AnthropicStandIn, data: Path, extra: dict[str, str] | None = None
) -> tuple[int, str, str]:
    env = clean_env(
        ANTHROPIC_API_KEY=KEY,
        ANTHROPIC_BASE_URL=server.base_url,
        AIRLOCK_DATA_DIR=str(data),
        AIRLOCK_LLM_MAX_RETRIES="0",
        COLUMNS="160",
        **(extra or {}),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", *args, cwd=data.parent, env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with within(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_dry_run_shows_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    plan = {
        "subtasks": [
            {"id": "s1", "description": "list the failing pods", "required_tools": ["run_command"],
             "depends_on": [], "risk_level": "low"},
            {"id": "s2", "description": "restart them", "required_tools": ["run_command"],
             "depends_on": ["s1"], "risk_level": "high"},
        ]
    }  # fmt: skip
    async with AnthropicStandIn(
        api_key=KEY, script=[tool_use_reply("submit_plan", plan)]
    ) as server:
        code, out, err = await airlock_run(
            "--dry-run", "restart the failing pods", server=server, data=tmp_path / "data"
        )
    assert code == 0, err
    assert "list the failing pods" in out and "restart them" in out
    assert "high" in out and "dry run: 2 subtasks planned, none run" in out
    request = server.message_requests()[0]
    assert request.body is not None and request.body["model"] == "claude-opus-4-7"
    assert "run_command" in request.messages[0]["content"]

    store = await open_store(f"sqlite:///{tmp_path / 'data' / 'airlock.db'}")
    try:
        [run] = await store.list_runs()
        assert run.goal == "restart the failing pods" and run.dry_run
        assert run.requester.startswith("local:")
    finally:
        await store.close()


async def test_a_goal_runs_with_approvals_given_by_yes(tmp_path: Path) -> None:
    plan = {
        "subtasks": [
            {"id": "s1", "description": "write the note", "required_tools": ["write_file"],
             "depends_on": [], "risk_level": "high"},
        ]
    }  # fmt: skip
    script = [
        tool_use_reply("submit_plan", plan),
        tool_use_reply("write_file", {"path": "note.txt", "content": "hello"}),
        text_reply("wrote note.txt"),
    ]
    async with AnthropicStandIn(api_key=KEY, script=script) as server:
        code, out, err = await airlock_run(
            "--yes", "leave a note", server=server, data=tmp_path / "data"
        )
    assert code == 0, err
    assert "wrote note.txt" in out and "completed" in out
    assert (tmp_path / "data" / "workspace" / "note.txt").read_text() == "hello"


async def test_run_without_an_api_key_exits_2(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "anything", cwd=tmp_path, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with within(60):
        _, err = await process.communicate()
    assert process.returncode == 2
    assert "ANTHROPIC_API_KEY is not set" in err.decode()


async def test_mcp_servers_from_the_config_file_offer_their_tools(tmp_path: Path) -> None:
    config = {
        "servers": {
            "calc": {"command": sys.executable, "args": [str(MCP_SERVER)], "default_risk": "low"},
            "broken": {"command": str(tmp_path / "no-such-server")},
        }
    }
    (tmp_path / "mcp.json").write_text(json.dumps(config))
    plan = {"subtasks": [{"id": "s1", "description": "add", "required_tools": ["calc__add"],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    script = [
        tool_use_reply("submit_plan", plan),
        tool_use_reply("calc__add", {"a": 2, "b": 3}),
        text_reply("2 + 3 = 5"),
    ]
    async with AnthropicStandIn(api_key=KEY, script=script) as anthropic:
        code, out, err = await airlock_run(
            "add two numbers", server=anthropic, data=tmp_path / "data",
            extra={"AIRLOCK_MCP_CONFIG": str(tmp_path / "mcp.json")},
        )  # fmt: skip
    assert code == 0, err
    assert "MCP server broken unavailable" in out
    result = anthropic.message_requests()[2].tool_results()[0]
    assert not result.get("is_error") and "5" in result["content"]


async def airlock_in(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    """``airlock *args`` as a process in ``cwd``: its exit code and its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with within(60):
        out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_halt_refuses_new_goals_until_resume(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with AnthropicStandIn(api_key=KEY) as server:
        env = clean_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.base_url,
                        AIRLOCK_DATA_DIR=str(data))  # fmt: skip

        airlock = functools.partial(airlock_in, tmp_path, env)
        assert (await airlock("halt", "--reason", "incident 42"))[0] == 0
        code, out = await airlock("run", "--dry-run", "anything")
        assert code == 1 and "halted" in out and "incident 42" in out
        assert server.message_requests() == []
        assert (await airlock("resume"))[0] == 0
        server.enqueue(tool_use_reply("submit_plan", {"subtasks": [
            {"id": "s1", "description": "look", "required_tools": [], "depends_on": [],
             "risk_level": "low"}]}))  # fmt: skip
        code, out = await airlock("run", "--dry-run", "anything")
        assert code == 0, out


async def test_a_failed_run_is_retried_in_the_terminal(tmp_path: Path) -> None:
    from agent_core.testing.anthropic_server import fault, text_reply

    data = tmp_path / "data"
    async with AnthropicStandIn(api_key=KEY) as server:
        env = clean_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.base_url,
                        AIRLOCK_DATA_DIR=str(data), AIRLOCK_LLM_MAX_RETRIES="0")  # fmt: skip

        airlock = functools.partial(airlock_in, tmp_path, env)
        server.enqueue(tool_use_reply("submit_plan", {"subtasks": [
            {"id": "s1", "description": "look", "required_tools": [], "depends_on": [],
             "risk_level": "low"}]}), fault(500))  # fmt: skip
        code, out = await airlock("run", "look around")
        assert code == 1 and "failed" in out
        run_id = out.split("run ", 1)[1].split()[0]
        server.enqueue(text_reply("looked; all fine"))
        code, out = await airlock("retry", run_id, "--yes")
        assert code == 0, out
        assert f"run {run_id}: queued" in out and "all fine" in out
        code, out = await airlock("retry", run_id)
        assert code == 1 and "it is completed" in out
