"""The Store across real processes: races, signals, and a writer killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from agent_core.models import (
    Approval,
    ApprovalStatus,
    RiskLevel,
    RunKilled,
    RunStatus,
    ToolCallSubject,
)
from agent_core.store import open_store
from tests.support import within

pytestmark = pytest.mark.processes

REPO = Path(__file__).resolve().parents[2]


class StoreProcess:
    """A child process running tests/faults/store_process.py."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, timeout: float = 15.0) -> str:
        assert self.process.stdout is not None
        async with within(timeout):
            raw = await self.process.stdout.readline()
        if not raw:
            assert self.process.stderr is not None
            error = (await self.process.stderr.read()).decode()
            raise AssertionError(f"store process ended early:\n{error}")
        return raw.decode().strip()

    async def expect(self, wanted: str) -> None:
        assert await self.line() == wanted

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")


@asynccontextmanager
async def store_process(url: str, *args: str) -> AsyncIterator[StoreProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.faults.store_process",
        url,
        *args,
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield StoreProcess(process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_two_processes_racing_on_one_approval_record_one_decision(store_url: str) -> None:
    store = await open_store(store_url)
    subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={"env": "prod"})
    approval = await store.create_approval(
        Approval(run_id="run_race", subject=subject, risk=RiskLevel.HIGH)
    )
    try:
        async with (
            store_process(store_url, "decide", approval.id, "10", "U0LEFT") as left,
            store_process(store_url, "decide", approval.id, "10", "U0RIGHT") as right,
        ):
            await left.expect("ready")
            await right.expect("ready")
            left.go()
            right.go()
            outcomes = json.loads(await left.line()) + json.loads(await right.line())

        assert sorted(outcomes) == ["already_decided"] * 19 + ["concluded"]
        stored = await store.get_approval(approval.id)
        assert len(stored.decisions) == 1
        assert stored.status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED)
        assert stored.decided_by == stored.decisions[0].by
    finally:
        await store.close()


async def test_a_signal_published_in_one_process_is_received_in_another(store_url: str) -> None:
    async with store_process(store_url, "listen") as listener:
        await listener.expect("subscribed")
        async with store_process(store_url, "publish", "run_signal") as publisher:
            await publisher.expect("published")
        received = RunKilled.model_validate_json(await listener.line())
    assert received == RunKilled(run_id="run_signal", by="U0ADMIN", reason="from another process")


async def test_what_was_written_survives_the_writer_being_killed(store_url: str) -> None:
    async with store_process(store_url, "write", "run_killed") as writer:
        await writer.expect("written")
        writer.process.send_signal(signal.SIGKILL)
        assert await writer.process.wait() == -signal.SIGKILL

    store = await open_store(store_url)
    try:
        run = await store.get_run("run_killed")
        assert run.status is RunStatus.QUEUED
        approval = await store.get_approval("apr_run_killed")
        assert approval.status is ApprovalStatus.APPROVED
        assert approval.decided_by == "U0ALICE"
        assert await store.load_checkpoint("run_killed") == b"checkpoint-1"
        assert [e.kind for e in await store.list_audit("run_killed")] == ["tool_call"]
    finally:
        await store.close()


async def test_a_writer_killed_mid_group_commit_loses_nothing_it_acknowledged(
    tmp_path: Path,
) -> None:
    # Sixteen tasks commit steps at once, so their writes share commits; the process is killed
    # while groups are in flight. Every step it acknowledged is there, whole; a step it did not
    # acknowledge is there whole or not at all, never its journal record without its event.
    url = f"sqlite:///{tmp_path / 'airlock.db'}"
    async with store_process(url, "steps", "16") as writer:
        lines = [(await writer.line()).split() for _ in range(200)]
        writer.process.send_signal(signal.SIGKILL)
        await writer.process.wait()
    acknowledged = {run_id for run_id, _ in lines}
    assert int(lines[-1][1]) < len(lines)  # fewer commits than steps: they were grouped
    store = await open_store(url)
    try:
        runs = await store.audit_runs()
        assert acknowledged <= set(runs)
        for run_id in runs:
            assert list(await store.tool_calls(run_id, ["toolu_1"])) == ["toolu_1"]
            assert [e.kind for e in await store.list_audit(run_id)] == ["tool_call"]
        written = int((await store._db.read(  # type: ignore[attr-defined]
            lambda conn: conn.execute("SELECT count(*) FROM tool_calls").fetchone()
        ))[0])  # fmt: skip
        assert written == len(runs)
    finally:
        await store.close()
