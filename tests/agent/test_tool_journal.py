"""The tool-call journal decides a resumed round: never a call repeated silently, and the
audit trail (kept for people) is not what decides."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_core.approvals import ApprovalGate, ApprovalPolicy, Pending
from agent_core.audit.trail import Audit
from agent_core.clock import utcnow
from agent_core.llm.anthropic import AnthropicLLM
from agent_core.models import AuditEvent, RiskLevel, Run, Subtask, SubtaskResult, ToolCallSubject
from agent_core.runs.executor import Drained, Executor, ExecutorLimits
from agent_core.runs.journal import ToolJournal
from agent_core.store import Store
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.testing.channel import RecordingChannel
from agent_core.toolcalls import ToolCallRecord, ToolCallState, arguments_digest
from agent_core.tools import Tool, ToolContext, ToolRegistry
from agent_core.tools.processes import running_process

CALL = "toolu_earlier"
ARGUMENTS = {"to": "ops"}


@dataclass(kw_only=True)
class World:
    """An executor as the orchestrator builds it, over one tool that counts its calls."""

    store: Store
    executor: Executor
    channel: RecordingChannel
    run: Run
    calls: list[dict[str, Any]]

    async def resume(self, record: ToolCallRecord | None) -> str:
        """Resume a round whose one call has ``record`` in the journal; what the model is told."""
        messages = await self._round(record)
        result = await self._run(messages)
        assert isinstance(result, SubtaskResult) and result.status == "completed", result
        [answer] = [b for b in messages[2]["content"] if b["tool_use_id"] == CALL]
        return str(answer["content"])

    async def parked(self, record: ToolCallRecord | None) -> Pending:
        """Resume such a round, which stops to wait for a person: on which approval."""
        messages = await self._round(record)
        result = await self._run(messages)
        assert isinstance(result, Pending), result
        assert messages[2:] == [{"role": "user", "content": []}]  # the call is unanswered
        return result

    async def _round(self, record: ToolCallRecord | None) -> list[dict[str, Any]]:
        if record is not None:
            await self.store.save_tool_call(record)
        call = {"type": "tool_use", "id": CALL, "name": "send", "input": ARGUMENTS}
        return [{"role": "user", "content": "send it"},
                {"role": "assistant", "content": [call]}]  # fmt: skip

    async def _run(self, messages: list[dict[str, Any]]) -> SubtaskResult | Pending:
        result = await self.executor.run(
            run=self.run, subtask=Subtask(id="s1", description="send it"), inputs={},
            messages=messages,
        )  # fmt: skip
        assert not isinstance(result, Drained)
        return result

    async def kinds(self) -> list[str]:
        return [e.kind for e in await self.store.list_audit(self.run.id)]

    def record(self, **changes: Any) -> ToolCallRecord:
        return ToolCallRecord(run_id=self.run.id, tool_use_id=CALL, tool="send",
                              digest=arguments_digest(ARGUMENTS), **changes)  # fmt: skip


WorldOf = Callable[..., Any]


@pytest.fixture
def world_of(store: Store, llm: AnthropicLLM, tmp_path: Path) -> WorldOf:
    async def build(risk: RiskLevel, *, idempotent: bool = False, audited: bool = True) -> World:
        calls: list[dict[str, Any]] = []

        async def send(arguments: dict[str, Any], context: ToolContext) -> str:
            calls.append(arguments)
            return f"sent to {arguments['to']}"

        tool = Tool(name="send", description="Sends a message.", input_schema={"type": "object"},
                    risk=risk, handler=send, idempotent=idempotent)  # fmt: skip
        channel = RecordingChannel()
        audit = Audit(store=store)
        executor = Executor(
            llm=llm, tools=ToolRegistry([tool]), limits=ExecutorLimits(max_iterations=4),
            gate=ApprovalGate(store=store, channel=channel, policy=ApprovalPolicy(), audit=audit),
            context=lambda r: ToolContext(run=r, workspace=tmp_path, channel=channel),
            journal=ToolJournal(store=store), audit=audit if audited else None,
        )  # fmt: skip
        run = await store.create_run(Run(goal="send it", requester="U0REQUEST"))
        return World(store=store, executor=executor, channel=channel, run=run, calls=calls)

    return build


async def test_a_call_the_journal_says_finished_has_its_result_reused(
    world_of: WorldOf, anthropic: AnthropicStandIn
) -> None:
    world = await world_of(RiskLevel.MEDIUM)
    finished = world.record().ended(
        ToolCallState.FINISHED, output="sent to ops, 3 people", is_error=False, at=utcnow()
    )
    anthropic.enqueue(text_reply("done"))
    assert await world.resume(finished) == "sent to ops, 3 people"
    assert world.calls == []
    assert "tool_call" not in await world.kinds()  # nothing in the trail said it ran


@pytest.mark.parametrize("risk", [RiskLevel.LOW, RiskLevel.MEDIUM])
async def test_a_call_the_journal_says_started_is_not_made_again(
    world_of: WorldOf, anthropic: AnthropicStandIn, risk: RiskLevel
) -> None:
    world = await world_of(risk)
    anthropic.enqueue(text_reply("I will check first"))
    answer = await world.resume(world.record())
    assert "whether it finished is unknown" in answer and world.calls == []
    [record] = (await world.store.tool_calls(world.run.id, [CALL])).values()
    assert record.state is ToolCallState.OUTCOME_UNKNOWN and record.output == answer
    assert "tool_outcome_unknown" in await world.kinds()


async def test_without_an_audit_trail_the_rule_holds(
    world_of: WorldOf, anthropic: AnthropicStandIn
) -> None:
    """An executor recording nothing for people (the benchmark's "audit off") still never
    repeats a call silently, and still keeps every call in the journal."""
    world = await world_of(RiskLevel.LOW, audited=False)
    anthropic.enqueue(text_reply("I will check first"))
    assert "whether it finished is unknown" in await world.resume(world.record())
    assert world.calls == [] and await world.kinds() == []


async def test_the_journal_decides_not_the_audit_trail(
    world_of: WorldOf, anthropic: AnthropicStandIn
) -> None:
    """The trail says the call finished; the journal says it only started: the journal wins."""
    world = await world_of(RiskLevel.LOW)
    await world.store.append_audit(AuditEvent(
        run_id=world.run.id, kind="tool_result", actor="airlock",
        data={"tool": "send", "tool_use_id": CALL, "is_error": False, "output": "from the trail"},
    ))  # fmt: skip
    anthropic.enqueue(text_reply("I will check first"))
    assert "whether it finished is unknown" in await world.resume(world.record())


async def test_an_idempotent_call_the_journal_says_started_is_made_again(
    world_of: WorldOf, anthropic: AnthropicStandIn
) -> None:
    world = await world_of(RiskLevel.LOW, idempotent=True)
    anthropic.enqueue(text_reply("done"))
    assert "sent to ops" in await world.resume(world.record())
    assert world.calls == [ARGUMENTS]
    [record] = (await world.store.tool_calls(world.run.id, [CALL])).values()
    assert (record.state, record.attempts) == (ToolCallState.FINISHED, 2)


async def test_a_risky_call_the_journal_says_started_goes_to_a_person_again(
    world_of: WorldOf, anthropic: AnthropicStandIn
) -> None:
    world = await world_of(RiskLevel.HIGH)
    parked = await world.parked(world.record())
    assert world.calls == []
    [asked] = world.channel.asked
    assert parked.approval_id == asked.id
    assert isinstance(asked.subject, ToolCallSubject) and asked.subject.tool_use_id == CALL
    assert asked.subject.earlier_copy_ended is None  # it started no process


@pytest.mark.processes
async def test_what_the_journal_says_a_call_started_is_ended_before_a_person_is_asked(
    world_of: WorldOf,
) -> None:
    world = await world_of(RiskLevel.HIGH)
    leftover = await asyncio.create_subprocess_exec("sleep", "120", start_new_session=True)
    try:
        process = running_process(leftover.pid, sandboxed=True)
        assert process is not None
        parked = await world.parked(world.record(processes=[process]))
        async with asyncio.timeout(5):
            assert await leftover.wait() == -signal.SIGKILL
        [asked] = world.channel.asked
        assert parked.approval_id == asked.id
        assert isinstance(asked.subject, ToolCallSubject) and asked.subject.earlier_copy_ended
    finally:
        if leftover.returncode is None:
            leftover.kill()
            await leftover.wait()


async def test_every_call_is_in_the_journal_before_it_runs_and_after(
    world_of: WorldOf, anthropic: AnthropicStandIn
) -> None:
    world = await world_of(RiskLevel.LOW)
    seen: list[ToolCallRecord] = []
    tool = world.executor.tools.get("send")
    assert tool is not None
    handler = tool.handler

    async def looks_first(arguments: dict[str, Any], context: ToolContext) -> str:
        seen.extend((await world.store.tool_calls(world.run.id, ["toolu_1"])).values())
        return await handler(arguments, context)

    tool.handler = looks_first
    anthropic.enqueue(tool_use_reply("send", ARGUMENTS, id="toolu_1"), text_reply("done"))
    result = await world.executor.run(run=world.run, subtask=Subtask(id="s1", description="x"),
                                      inputs={})  # fmt: skip
    assert result.status == "completed"
    [before] = seen
    assert (before.state, before.tool, before.digest) == (
        ToolCallState.STARTED,
        "send",
        arguments_digest(ARGUMENTS),
    )
    [after] = (await world.store.tool_calls(world.run.id, ["toolu_1"])).values()
    assert (after.state, after.is_error, after.attempts) == (ToolCallState.FINISHED, False, 1)
    assert "sent to ops" in str(after.output)
