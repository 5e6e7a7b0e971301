"""A separate process that uses a Store, driven by tests/faults/test_store_processes.py.

Usage: ``python -m tests.faults.store_process STORE_URL COMMAND [ARGS...]``.
It speaks line by line on stdout so the test can wait for each step.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys

from agent_core.models import (
    Approval,
    AuditEvent,
    Decision,
    DecisionKind,
    RiskLevel,
    Run,
    RunKilled,
    ToolCallSubject,
)
from agent_core.store import Store, open_store
from agent_core.toolcalls import ToolCallRecord, arguments_digest


def say(line: str) -> None:
    print(line, flush=True)


async def wait_for_go() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def decide(store: Store, approval_id: str, count: str, prefix: str) -> None:
    """Fire ``count`` concurrent decisions on one approval once told to go."""
    decisions = [
        Decision(kind=DecisionKind.APPROVE if i % 2 else DecisionKind.REJECT, by=f"{prefix}{i}")
        for i in range(int(count))
    ]
    say("ready")
    await wait_for_go()
    outcomes = await asyncio.gather(*(store.record_decision(approval_id, d) for d in decisions))
    say(json.dumps([o.kind for o in outcomes]))


async def listen(store: Store) -> None:
    """Print the first signal published by anyone else."""
    async with store.subscribe() as signals:
        say("subscribed")
        signal = await signals.get()
    say(signal.model_dump_json())


async def publish(store: Store, run_id: str) -> None:
    await store.publish(RunKilled(run_id=run_id, by="U0ADMIN", reason="from another process"))
    say("published")


async def write(store: Store, run_id: str) -> None:
    """Write one of everything, report it, then wait to be killed."""
    run = await store.create_run(Run(id=run_id, goal="survive a SIGKILL", requester="U0REQUEST"))
    subject = ToolCallSubject(subtask_id="s1", tool="run_command", arguments={"cmd": "uptime"})
    approval = Approval(id=f"apr_{run_id}", run_id=run_id, subject=subject, risk=RiskLevel.HIGH)
    await store.create_approval(approval)
    await store.record_decision(approval.id, Decision(kind=DecisionKind.APPROVE, by="U0ALICE"))
    await store.save_run(run, checkpoint=b"checkpoint-1")
    await store.append_audit(AuditEvent(run_id=run_id, kind="tool_call", actor="airlock"))
    say("written")
    await wait_for_go()


async def steps(store: Store, writers: str) -> None:
    """Commit steps from ``writers`` concurrent tasks until killed, each one a tool call's
    journal record and its audit event, printing each step once it is acknowledged."""

    async def writer(index: int) -> None:
        for n in itertools.count():
            run_id = f"run_{index}_{n}"
            async with store.step(run_id):
                record = ToolCallRecord(run_id=run_id, tool_use_id="toolu_1", tool="restart",
                                        digest=arguments_digest({}))  # fmt: skip
                await store.save_tool_call(record)
                await store.append_audit(AuditEvent(run_id=run_id, kind="tool_call", actor="a"))
            say(f"{run_id} {connection.commits}")

    connection = store._db  # type: ignore[attr-defined]  # its commits: groups happened
    async with asyncio.TaskGroup() as group:
        for index in range(int(writers)):
            group.create_task(writer(index))


COMMANDS = {"decide": decide, "listen": listen, "publish": publish, "write": write,
            "steps": steps}  # fmt: skip


async def main(url: str, command: str, *args: str) -> None:
    store = await open_store(url, poll_interval=0.02)
    try:
        await COMMANDS[command](store, *args)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
