"""A run survives its process being killed: it waits again, and is asked again mid-call.

Real processes: `airlock run` is SIGKILLed while it waits, `airlock run --resume` picks the
run up, and `airlock approve` decides from a third process.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from agent_core.models import ApprovalStatus, AuditEvent, RunStatus, ToolCallSubject
from agent_core.store import Store, open_store
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from tests.e2e.test_serve import clean_env
from tests.support import eventually, within

pytestmark = pytest.mark.processes

KEY = "sk-ant-restart-test"


def environment(server: AnthropicStandIn, data: Path) -> dict[str, str]:
    return clean_env(
        ANTHROPIC_API_KEY=KEY,
        ANTHROPIC_BASE_URL=server.base_url,
        AIRLOCK_DATA_DIR=str(data),
        AIRLOCK_LLM_MAX_RETRIES="0",
        AIRLOCK_SIGNAL_POLL_SECONDS="0.05",
    )


@asynccontextmanager
async def airlock(
    *args: str, env: dict[str, str], cwd: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def approve(approval_id: str, env: dict[str, str], cwd: Path) -> None:
    async with airlock("approve", approval_id, env=env, cwd=cwd) as process:
        async with within(60):
            out, err = await process.communicate()
        assert process.returncode == 0, (out + err).decode()


async def pending(store: Store) -> str:
    """The id of the one pending approval, once there is one."""
    found: list[str] = []

    async def one() -> bool:
        approvals = await store.list_pending_approvals()
        found[:] = [a.id for a in approvals]
        return len(approvals) == 1

    await eventually(one, timeout=30, load_scaled=True)
    return found[0]


async def finished(process: asyncio.subprocess.Process) -> tuple[int, str]:
    async with within(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, (out + err).decode()


def kinds(events: list[AuditEvent], kind: str, tool: str) -> list[AuditEvent]:
    return [e for e in events if e.kind == kind and e.data.get("tool") == tool]


async def test_a_waiting_run_survives_sigkill_and_completes_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    plan = {"subtasks": [{"id": "s1", "description": "write the release note", "depends_on": [],
                          "required_tools": ["write_file"], "risk_level": "high"}]}  # fmt: skip
    script = [
        tool_use_reply("submit_plan", plan),
        tool_use_reply("write_file", {"path": "release.txt", "content": "v2"}),
        text_reply("release note written"),
    ]
    async with AnthropicStandIn(api_key=KEY, script=script) as server:
        env = environment(server, data)
        async with airlock("run", "write the release note", env=env, cwd=tmp_path) as first:
            await eventually(lambda: _exists(data / "airlock.db"), timeout=30, load_scaled=True)
            store = await open_store(f"sqlite:///{data / 'airlock.db'}")
            try:
                plan_approval = await pending(store)
                [run] = await store.list_runs()
                await eventually(
                    lambda: _status(store, run.id, RunStatus.AWAITING_APPROVAL), load_scaled=True
                )
                first.send_signal(signal.SIGKILL)
                assert await first.wait() == -signal.SIGKILL

                async with airlock("run", "--resume", run.id, env=env, cwd=tmp_path) as second:
                    await approve(plan_approval, env, tmp_path)
                    call_approval = await pending(store)
                    assert call_approval != plan_approval
                    await approve(call_approval, env, tmp_path)
                    code, output = await finished(second)
                assert code == 0, output
                assert "release note written" in output

                done = await store.get_run(run.id)
                assert done.status is RunStatus.COMPLETED
                assert (data / "workspace" / "release.txt").read_text() == "v2"
                events = await store.list_audit(run.id)
                assert len(kinds(events, "tool_call", "write_file")) == 1
                assert len(kinds(events, "tool_result", "write_file")) == 1
                assert len(server.message_requests()) == 3  # planned once, not again after the kill
            finally:
                await store.close()


async def test_a_call_interrupted_by_sigkill_is_asked_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    plan = {"subtasks": [{"id": "s1", "description": "migrate", "depends_on": [],
                          "required_tools": ["run_command"], "risk_level": "high"}]}  # fmt: skip
    command = "if [ -f started ]; then echo second attempt; else echo $$ > started; sleep 60; fi"
    script = [
        tool_use_reply("submit_plan", plan),
        tool_use_reply("run_command", {"command": command}),
        text_reply("migrated"),
    ]
    async with AnthropicStandIn(api_key=KEY, script=script) as server:
        env = environment(server, data)
        store: Store | None = None
        try:
            async with airlock("run", "migrate", env=env, cwd=tmp_path) as first:
                await eventually(lambda: _exists(data / "airlock.db"), timeout=30, load_scaled=True)
                store = await open_store(f"sqlite:///{data / 'airlock.db'}")
                await approve(await pending(store), env, tmp_path)  # the plan
                call = await pending(store)
                await approve(call, env, tmp_path)
                marker = data / "workspace" / "started"
                await eventually(lambda: _exists(marker), timeout=30, load_scaled=True)
                first.send_signal(signal.SIGKILL)
                await first.wait()
            [run] = await store.list_runs()

            async with airlock("run", "--resume", run.id, env=env, cwd=tmp_path) as second:
                again = await pending(store)
                asked = await store.get_approval(again)
                assert again != call
                assert isinstance(asked.subject, ToolCallSubject) and asked.subject.possibly_partial
                assert (await store.get_approval(call)).status is ApprovalStatus.APPROVED
                await approve(again, env, tmp_path)
                code, output = await finished(second)
            assert code == 0, output
            events = await store.list_audit(run.id)
            assert len(kinds(events, "tool_call", "run_command")) == 2
            assert len(kinds(events, "tool_result", "run_command")) == 1
            assert "second attempt" in anthropic_last_result(server)
        finally:
            # The first copy died with its airlock (tests/attacks/test_sandbox.py checks it).
            if store is not None:
                await store.close()


def anthropic_last_result(server: AnthropicStandIn) -> str:
    content = server.message_requests()[-1].tool_results()[0]["content"]
    return str(content)


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)


async def _status(store: Store, run_id: str, status: RunStatus) -> bool:
    return (await store.get_run(run_id)).status is status
