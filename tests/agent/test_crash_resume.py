"""A round picked up after the process stopped mid-call: nothing non-idempotent runs twice."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent_core.approvals import ApprovalGate, ApprovalPolicy, Pending
from agent_core.audit.trail import Audit
from agent_core.channel import RunEvent, RunFinished
from agent_core.clock import utcnow
from agent_core.models import (
    Approval,
    AuditEvent,
    Plan,
    RiskLevel,
    Run,
    RunStatus,
    Subtask,
    ToolCallSubject,
)
from agent_core.runs.orchestrator import Checkpoint
from agent_core.store import Store
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.channel import RecordingChannel, approve_all
from agent_core.toolcalls import ToolCallState
from agent_core.tools import Tool, ToolContext, ToolRegistry
from agent_core.tools.processes import running_process
from tests.agent.conftest import Harness
from tests.support import eventually

Factory = Callable[..., Awaitable[Harness]]


def hanging_tool(name: str, risk: RiskLevel, *, idempotent: bool,
                 calls: list[str], hang: asyncio.Event) -> Tool:  # fmt: skip
    """A tool that hangs on its first call (until the process "dies") and answers after."""

    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        calls.append(name)
        if len(calls) == 1:
            hang.set()
            await asyncio.Event().wait()
        return f"{name} done"

    return Tool(name=name, description=f"The {name} tool.", input_schema={"type": "object"},
                risk=risk, handler=handler, idempotent=idempotent)  # fmt: skip


async def interrupted_then_recovered(
    harness_factory: Factory, anthropic: AnthropicStandIn, tool: Tool, hang: asyncio.Event,
    before_recovery: Callable[[Harness, str], Awaitable[None]] | None = None,
) -> tuple[Harness, str]:  # fmt: skip
    harness = await harness_factory(registry=ToolRegistry([tool]))
    plan = {"subtasks": [{"id": "s1", "description": "do it", "required_tools": [tool.name],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    anthropic.enqueue(tool_use_reply("submit_plan", plan), tool_use_reply(tool.name, {}))
    run = await harness.start()
    async with asyncio.timeout(10):
        await hang.wait()
    await harness.runner.stop()  # the process dies in the middle of the call
    assert (await harness.store.get_run(run.id)).status is RunStatus.RUNNING
    saved = await harness.store.load_checkpoint(run.id)
    assert saved is not None and json.loads(saved)["journal"] is True  # no audit fallback
    if before_recovery is not None:
        await before_recovery(harness, run.id)
    anthropic.enqueue(text_reply("carried on"))
    done = await harness.recovered(run.id)
    assert done.status is RunStatus.COMPLETED
    answered = anthropic.requests[-1].last_user_blocks()[0]
    return harness, str(answered["content"])


@pytest.mark.parametrize("risk", [RiskLevel.LOW, RiskLevel.MEDIUM])
async def test_a_call_that_may_have_run_is_not_made_again_and_the_model_is_told(
    harness_factory: Factory, anthropic: AnthropicStandIn, risk: RiskLevel
) -> None:
    calls: list[str] = []
    hang = asyncio.Event()
    tool = hanging_tool("send_email", risk, idempotent=False, calls=calls, hang=hang)
    harness, answer = await interrupted_then_recovered(harness_factory, anthropic, tool, hang)
    assert calls == ["send_email"]
    assert "whether it finished is unknown" in answer
    [run] = await harness.store.list_runs()
    kinds = [e.kind for e in await harness.store.list_audit(run.id)]
    assert "tool_outcome_unknown" in kinds


async def test_an_idempotent_call_is_simply_made_again(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    calls: list[str] = []
    hang = asyncio.Event()
    tool = hanging_tool("lookup", RiskLevel.LOW, idempotent=True, calls=calls, hang=hang)
    _, answer = await interrupted_then_recovered(harness_factory, anthropic, tool, hang)
    assert calls == ["lookup", "lookup"] and "lookup done" in answer


async def test_a_call_that_finished_before_the_checkpoint_has_its_result_reused(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    calls: list[str] = []
    hang = asyncio.Event()
    tool = hanging_tool("send_email", RiskLevel.MEDIUM, idempotent=False, calls=calls, hang=hang)

    async def finished_but_not_checkpointed(harness: Harness, run_id: str) -> None:
        [started] = [e for e in await harness.store.list_audit(run_id) if e.kind == "tool_call"]
        key = started.data["tool_use_id"]
        [record] = (await harness.store.tool_calls(run_id, [key])).values()
        assert record.state is ToolCallState.STARTED
        await harness.store.save_tool_call(record.ended(
            ToolCallState.FINISHED, output="sent to 3 people", is_error=False, at=utcnow()
        ))  # fmt: skip

    _, answer = await interrupted_then_recovered(
        harness_factory, anthropic, tool, hang, before_recovery=finished_but_not_checkpointed
    )
    assert calls == ["send_email"] and answer == "sent to 3 people"


async def test_a_process_that_stopped_after_the_final_answer_is_not_asked_again(
    harness_factory: Factory, anthropic: AnthropicStandIn, tools: Any
) -> None:
    """The answer was checkpointed, the result not yet recorded: the answer is the result;
    asking the model again could have it call its tools again."""
    harness = await harness_factory()
    run = await harness.store.create_run(Run(goal="check", requester="U0REQUEST"))
    step = {"id": "s1", "description": "look", "depends_on": [], "required_tools": ["lookup"],
            "risk_level": "low"}  # fmt: skip
    plan = Plan.model_validate({"subtasks": [step]})
    call = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"target": "web"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "web is healthy"}
    conversation = [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [result]},
        {"role": "assistant", "content": [{"type": "text", "text": "web is fine"}]},
    ]
    checkpoint = Checkpoint(conversations={"s1": conversation}).model_dump_json().encode()
    for status in (RunStatus.PLANNING, RunStatus.RUNNING):  # as the dead process left it
        run = await harness.store.save_run(
            run.model_copy(update={"status": status, "plan": plan}), checkpoint=checkpoint
        )
    await harness.runner.submit(run.id)
    done = await harness.finished(run.id)
    assert done.status is RunStatus.COMPLETED and done.results["s1"].output == "web is fine"
    assert anthropic.requests == [] and tools.calls == []


@dataclass(kw_only=True)
class DiesWhileAsking(RecordingChannel):
    """The first approval request never gets out: the process dies while posting it."""

    posting: asyncio.Event = field(default_factory=asyncio.Event)

    async def request_decision(self, approval: Approval) -> None:
        if not self.posting.is_set():
            self.posting.set()
            await asyncio.Event().wait()
        await super().request_decision(approval)


async def _dies_at_a_restart_request(
    harness_factory: Factory, anthropic: AnthropicStandIn, channel: RecordingChannel,
    reached: asyncio.Event,
) -> tuple[Harness, Run, Approval]:  # fmt: skip
    """A run whose restart call is asked for, and the process stopped once ``reached`` is set
    (by ``channel``, while or after asking); the run and its pending request."""
    harness = await harness_factory(channel=channel)
    step = {"id": "s1", "description": "restart", "depends_on": [], "required_tools": ["restart"],
            "risk_level": "low"}  # fmt: skip
    anthropic.enqueue(tool_use_reply("submit_plan", {"subtasks": [step]}),
                      tool_use_reply("restart", {"target": "web"}))  # fmt: skip
    run = await harness.start()
    async with asyncio.timeout(10):
        await reached.wait()
    await harness.runner.stop()
    (approval,) = await harness.store.list_pending_approvals(run_id=run.id)
    return harness, run, approval


async def test_an_approval_created_but_never_asked_is_asked_when_the_run_resumes(
    harness_factory: Factory, anthropic: AnthropicStandIn, tools: Any
) -> None:
    channel = DiesWhileAsking()
    # The process dies while the card is being posted.
    harness, run, approval = await _dies_at_a_restart_request(harness_factory, anthropic,
                                                              channel, channel.posting)  # fmt: skip
    assert channel.asked == []  # nobody was asked

    channel.decider = approve_all()
    anthropic.enqueue(text_reply("restarted"))
    done = await harness.recovered(run.id)
    assert done.status is RunStatus.COMPLETED
    asked = [a.id for a in channel.asked]  # it, on resume (then the call's own, if any)
    assert asked[0] == approval.id and asked.count(approval.id) == 1
    assert [c[0] for c in tools.calls] == ["restart"]


@dataclass(kw_only=True)
class DiesAfterAsking(RecordingChannel):
    """The first approval request goes out, and the process dies before the run parks."""

    posted: asyncio.Event = field(default_factory=asyncio.Event)

    async def request_decision(self, approval: Approval) -> None:
        await super().request_decision(approval)
        if not self.posted.is_set():
            self.posted.set()
            await asyncio.Event().wait()


async def test_a_request_that_went_out_before_the_process_died_is_asked_again_on_resume(
    harness_factory: Factory, anthropic: AnthropicStandIn, tools: Any
) -> None:
    channel = DiesAfterAsking()
    # It dies after the post, before the flag and the park.
    harness, run, approval = await _dies_at_a_restart_request(harness_factory, anthropic,
                                                              channel, channel.posted)  # fmt: skip
    assert [a.id for a in channel.asked] == [approval.id]
    assert not (await harness.store.get_run(run.id)).status.is_final
    assert await harness.store.get_facts("approval-asked:" + approval.id) == {}

    channel.decider = approve_all()
    anthropic.enqueue(text_reply("restarted"))
    done = await harness.recovered(run.id)
    assert done.status is RunStatus.COMPLETED
    # Not known to be asked: asked again (a second card), never left unasked.
    assert [a.id for a in channel.asked][:2] == [approval.id, approval.id]
    assert [c[0] for c in tools.calls] == ["restart"]


async def test_the_flag_that_approvers_were_asked_lands_with_the_park(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    harness = await harness_factory(channel=RecordingChannel())  # nobody decides
    step = {"id": "s1", "description": "restart", "depends_on": [], "required_tools": ["restart"],
            "risk_level": "low"}  # fmt: skip
    anthropic.enqueue(tool_use_reply("submit_plan", {"subtasks": [step]}))  # its plan is asked
    run = await harness.parked((await harness.start()).id)
    assert run.status is RunStatus.AWAITING_APPROVAL
    (approval,) = await harness.store.list_pending_approvals(run_id=run.id)
    assert set(await harness.store.get_facts("approval-asked:" + approval.id)) == {"at"}


async def test_a_request_waiting_on_another_subtask_has_its_flag_written_at_once(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    working, finish = asyncio.Event(), asyncio.Event()

    async def slow(arguments: dict[str, Any], context: ToolContext) -> str:
        working.set()
        await finish.wait()
        return "slow done"

    async def after_slow(arguments: dict[str, Any], context: ToolContext) -> str:
        await working.wait()  # s1 asks only once s2 is inside its tool (no save till it ends)
        return "s2 is busy"

    async def restart(arguments: dict[str, Any], context: ToolContext) -> str:
        raise AssertionError("never approved, never run")

    def tool(name: str, risk: RiskLevel, handler: Any) -> Tool:
        return Tool(name=name, description=f"The {name} tool.", input_schema={"type": "object"},
                    risk=risk, handler=handler, timeout_seconds=60)  # fmt: skip

    registry = ToolRegistry([tool("slow", RiskLevel.LOW, slow),
                             tool("after_slow", RiskLevel.LOW, after_slow),
                             tool("restart", RiskLevel.HIGH, restart)])  # fmt: skip
    harness = await harness_factory(channel=RecordingChannel(), registry=registry)

    def by_subtask(request: RecordedRequest) -> Reply:
        said = json.dumps(request.messages)
        steps = ["after_slow", "restart"] if "ask them" in said else ["slow"]
        answered = said.count('"tool_result"')
        return tool_use_reply(steps[answered], {}) if answered < len(steps) else text_reply("ok")

    anthropic.set_default(by_subtask)
    plan = Plan(subtasks=[Subtask(id="s1", description="ask them"),
                          Subtask(id="s2", description="wait a while")])  # fmt: skip
    run = await harness.start(plan=plan)

    async def flagged() -> bool:
        pending = await harness.store.list_pending_approvals(run_id=run.id)
        return bool(pending) and bool(
            await harness.store.get_facts("approval-asked:" + pending[0].id)
        )

    try:  # the park waits for s2's tool; the flag that the approvers were asked does not
        await eventually(flagged, timeout=10, load_scaled=True)
        assert (await harness.store.get_run(run.id)).status is RunStatus.RUNNING
    finally:
        finish.set()
    assert (await harness.parked(run.id)).status is RunStatus.AWAITING_APPROVAL


@dataclass(kw_only=True)
class DiesWhileTellingTheEnd(RecordingChannel):
    """The process dies while it tells people a run ended: what the store holds then."""

    store: Store | None = None
    telling: asyncio.Event = field(default_factory=asyncio.Event)
    holder: tuple[str, float] | None = None

    async def notify(self, event: RunEvent) -> None:
        if isinstance(event, RunFinished) and not self.telling.is_set():
            assert self.store is not None
            self.holder = await self.store.lease_holder(event.run.id)
            self.telling.set()
            await asyncio.Event().wait()
        await super().notify(event)


async def test_a_run_ended_lets_go_of_its_lease_in_the_write_that_ends_it(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    channel = DiesWhileTellingTheEnd()
    harness = await harness_factory(channel=channel)
    channel.store = harness.store
    plan = {"subtasks": [{"id": "s1", "description": "look", "required_tools": [],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    anthropic.enqueue(tool_use_reply("submit_plan", plan), text_reply("looked"))
    run = await harness.start()
    async with asyncio.timeout(10):
        await channel.telling.wait()
    # Ended and let go in one write: a process that dies from here on holds nothing.
    assert channel.holder is None
    await harness.runner.stop()
    assert (await harness.store.get_run(run.id)).status is RunStatus.COMPLETED
    assert await harness.store.lease_holder(run.id) is None


async def test_two_processes_asking_for_the_same_call_at_once_share_one_approval(
    store: Any,
) -> None:
    """A worker that took a run over while the old owner was still at the gate: both ask
    for the same call; one approval is created, and neither run fails."""
    run = await store.create_run(Run(goal="restart", requester="U0REQUEST"))
    channel = RecordingChannel()
    audit = Audit(store=store)
    policy = ApprovalPolicy()
    gates = [ApprovalGate(store=store, channel=channel, policy=policy, audit=audit) for _ in "ab"]
    call = {"run": run, "subtask_id": "s1", "tool": "restart", "arguments": {"target": "web"},
            "risk": RiskLevel.HIGH}  # fmt: skip
    asked = [gate.check_tool_call(**call) for gate in gates]
    outcomes = await asyncio.gather(*asked, return_exceptions=True)
    assert all(isinstance(o, Pending) for o in outcomes), outcomes
    (approval,) = await store.list_pending_approvals(run_id=run.id)
    assert {o.approval_id for o in outcomes if isinstance(o, Pending)} == {approval.id}
    kinds = [e.kind for e in await store.list_audit(run.id)]
    assert kinds.count("approval_requested") == 1  # one request made, one line


# --- runs that crashed under the version before the journal ---------------------------------


async def legacy_round(
    harness: Harness, tool: str, arguments: dict[str, Any], trail: list[tuple[str, dict[str, Any]]]
) -> Run:
    """A run left as the version before the tool-call journal left it: its checkpoint (without
    the journal flag) ends on one call of ``tool``, its audit trail holds ``trail`` for that
    call, and the journal holds nothing."""
    run = await harness.store.create_run(Run(goal="legacy", requester="U0REQUEST"))
    step = {"id": "s1", "description": "do it", "depends_on": [], "required_tools": [tool],
            "risk_level": "low"}  # fmt: skip
    plan = Plan.model_validate({"subtasks": [step]})
    call = {"type": "tool_use", "id": "toolu_old", "name": tool, "input": arguments}
    conversation = [{"role": "user", "content": "do it"}, {"role": "assistant", "content": [call]}]
    checkpoint = json.dumps({"conversations": {"s1": conversation}}).encode()  # the old shape
    for status in (RunStatus.PLANNING, RunStatus.RUNNING):
        run = await harness.store.save_run(
            run.model_copy(update={"status": status, "plan": plan}), checkpoint=checkpoint
        )
    for kind, data in trail:
        await harness.store.append_audit(AuditEvent(
            run_id=run.id, kind=kind, actor="airlock",
            data={"tool": tool, "tool_use_id": "toolu_old", **data},
        ))  # fmt: skip
    assert await harness.store.tool_calls(run.id, ["toolu_old"]) == {}
    return run


async def test_a_legacy_call_that_finished_has_its_result_reused(
    harness: Harness, anthropic: AnthropicStandIn, tools: Any
) -> None:
    result = {"is_error": False, "output": "told ops, from the trail"}
    trail = [("tool_call", {"arguments": {"target": "ops"}}), ("tool_result", result)]
    run = await legacy_round(harness, "notify", {"target": "ops"}, trail)
    anthropic.enqueue(text_reply("carried on"))
    await harness.runner.submit(run.id)
    assert (await harness.finished(run.id)).status is RunStatus.COMPLETED
    assert tools.calls == []
    answered = anthropic.requests[-1].last_user_blocks()[0]
    assert answered["content"] == "told ops, from the trail" and not answered.get("is_error")
    assert "tool_result_reused" in [e.kind for e in await harness.store.list_audit(run.id)]


async def test_a_legacy_call_that_may_have_run_is_not_made_again(
    harness: Harness, anthropic: AnthropicStandIn, tools: Any
) -> None:
    trail = [("tool_call", {"arguments": {"target": "ops"}})]
    run = await legacy_round(harness, "notify", {"target": "ops"}, trail)
    anthropic.enqueue(text_reply("carried on"))
    await harness.runner.submit(run.id)
    assert (await harness.finished(run.id)).status is RunStatus.COMPLETED
    assert tools.calls == []
    answered = anthropic.requests[-1].last_user_blocks()[0]
    assert "whether it finished is unknown" in str(answered["content"]) and answered["is_error"]
    assert "tool_outcome_unknown" in [e.kind for e in await harness.store.list_audit(run.id)]
    [record] = (await harness.store.tool_calls(run.id, ["toolu_old"])).values()
    assert record.state is ToolCallState.OUTCOME_UNKNOWN  # kept in the journal from now on


@pytest.mark.processes
async def test_a_legacy_call_has_what_it_left_running_ended_before_it_is_asked_again(
    harness: Harness, anthropic: AnthropicStandIn, tools: Any
) -> None:
    leftover = await asyncio.create_subprocess_exec("sleep", "120", start_new_session=True)
    try:
        process = running_process(leftover.pid, sandboxed=True)
        assert process is not None
        started = {"process": process.model_dump(mode="json")}
        trail = [("tool_call", {"arguments": {"target": "web"}}),
                 ("tool_process_started", started)]  # fmt: skip
        run = await legacy_round(harness, "restart", {"target": "web"}, trail)
        anthropic.enqueue(text_reply("restarted"))
        await harness.runner.submit(run.id)
        assert (await harness.finished(run.id)).status is RunStatus.COMPLETED
        async with asyncio.timeout(5):
            assert await leftover.wait() == -signal.SIGKILL
        [asked] = harness.channel.asked
        assert isinstance(asked.subject, ToolCallSubject) and asked.subject.earlier_copy_ended
        assert tools.calls == [("restart", {"target": "web"})]  # approved, made again
        kinds = [e.kind for e in await harness.store.list_audit(run.id)]
        assert kinds.index("tool_process_ended") < kinds.index("approval_requested")
        # Ended (and found gone) again on the resume after the decision, as before the journal.
        ends = [e for e in await harness.store.list_audit(run.id) if e.kind == "tool_process_ended"]
        assert [e.data["confirmed"] for e in ends] == [True, True]
    finally:
        if leftover.returncode is None:
            leftover.kill()
            await leftover.wait()


async def test_a_process_dying_between_decision_and_start_does_not_ask_twice(
    harness_factory: Factory, anthropic: AnthropicStandIn, tools: Any
) -> None:
    """The approver decided; the process dies while the approved call's start is being
    committed. The approval is used up in that same commit, so nothing of it landed: the
    next process runs the call on the decision already made, once, without asking again
    (were the approval used up first, on its own, the next process would find it used
    with no start recorded, and have to ask the approver to decide a second time)."""
    harness = await harness_factory()
    store: Any = harness.store
    committing = asyncio.Event()
    commit_step = store._commit_step

    async def dies_while_starting(held: Any, run: Any, checkpoint: Any) -> Any:
        if any(r.tool == "restart" and r.state is ToolCallState.STARTED for r in held.tool_calls):
            committing.set()
            await asyncio.Event().wait()  # the process dies before this lands
        return await commit_step(held, run, checkpoint)

    store._commit_step = dies_while_starting
    step = {"id": "s1", "description": "restart", "depends_on": [], "required_tools": ["restart"],
            "risk_level": "low"}  # fmt: skip
    anthropic.enqueue(tool_use_reply("submit_plan", {"subtasks": [step]}),
                      tool_use_reply("restart", {"target": "web"}))  # fmt: skip
    run = await harness.start()
    async with asyncio.timeout(10):
        await committing.wait()
    await harness.runner.stop()
    del store._commit_step
    [approval] = [a for a in harness.channel.asked if isinstance(a.subject, ToolCallSubject)]
    assert (await store.get_approval(approval.id)).consumed_at is None
    assert "tool_call" not in [e.kind for e in await store.list_audit(run.id)]

    anthropic.enqueue(text_reply("restarted"))
    done = await harness.recovered(run.id)
    assert done.status is RunStatus.COMPLETED
    asked = [a.id for a in harness.channel.asked if isinstance(a.subject, ToolCallSubject)]
    assert asked == [approval.id]  # asked once, ever
    assert [c[0] for c in tools.calls] == ["restart"]
    assert (await store.get_approval(approval.id)).consumed_at is not None
