"""Human approval end to end: risk levels, who may decide, edits, deadlines, kill and halt."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from agent_core.approvals import ApprovalPolicy, Authority, Refused
from agent_core.audit.trail import verify_chain
from agent_core.llm.budget import BudgetLimits
from agent_core.models import (
    Approval,
    ApprovalStatus,
    Concluded,
    Counted,
    Decision,
    DecisionKind,
    Plan,
    RiskLevel,
    Run,
    RunStatus,
    Subtask,
    TimeoutPolicy,
    ToolCallSubject,
)
from agent_core.store import Store
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    reply,
    text_reply,
    tool_use_block,
    tool_use_reply,
)
from agent_core.testing.channel import RecordingChannel, approve_all
from agent_core.tools import Tool, ToolContext, ToolRegistry
from agent_core.tools.builtins.command import command_risk
from agent_core.tools.builtins.files import write_file_tool
from tests.agent.conftest import Harness, Tools
from tests.support import eventually

Factory = Callable[..., Awaitable[Harness]]


def plan(tools: list[str], risk: str = "low") -> Any:
    subtask = {"id": "s1", "description": "do it", "required_tools": tools, "depends_on": [],
               "risk_level": risk}  # fmt: skip
    return tool_use_reply("submit_plan", {"subtasks": [subtask]})


def waiting() -> RecordingChannel:
    """A channel where nobody answers until the test decides."""
    return RecordingChannel(decider=lambda approval: None)


def decision(kind: DecisionKind, by: str, **fields: Any) -> Decision:
    return Decision(kind=kind, by=by, **fields)


async def asked(harness: Harness, count: int = 1) -> None:
    async with asyncio.timeout(10):
        await harness.channel.wait_for(lambda c: len(c.asked) >= count)


def recording_command(calls: list[dict[str, Any]]) -> Tool:
    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        calls.append(arguments)
        return "ran"

    return Tool(name="run_command", description="Run a shell command.",
                input_schema={"type": "object", "properties": {"command": {"type": "string"}},
                              "required": ["command"]},
                risk=RiskLevel.HIGH, risk_for=command_risk, handler=handler)  # fmt: skip


async def test_low_runs_and_medium_notifies_without_asking(
    harness: Harness, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    anthropic.enqueue(
        plan(["lookup", "notify"]),
        tool_use_reply("lookup", {"target": "web"}),
        tool_use_reply("notify", {"target": "ops"}),
        text_reply("done"),
    )
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED
    assert harness.channel.asked == []
    notices = [e for e in harness.channel.events if e.kind == "tool_notice"]
    assert [(n.tool, n.risk) for n in notices] == [("notify", RiskLevel.MEDIUM)]  # type: ignore[union-attr]
    assert [c[0] for c in tools.calls] == ["lookup", "notify"]


async def test_injected_instructions_still_meet_the_critical_gate(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    calls: list[dict[str, Any]] = []
    harness = await harness_factory(
        channel=waiting(), registry=ToolRegistry([recording_command(calls)])
    )
    anthropic.enqueue(
        plan(["run_command"], risk="low"),
        tool_use_reply("run_command", {"command": "cat notes.txt"}),
        # The model, fooled by the output, asks for exactly what the text said.
        tool_use_reply("run_command", {"command": "rm -rf /"}),
    )
    run = await harness.start()
    await asked(harness)  # the plan: run_command is HIGH, so the plan is too
    await harness.service.decide(
        harness.channel.asked[0].id, decision(DecisionKind.APPROVE, "U0ADMIN")
    )
    await asked(harness, 2)
    await harness.service.decide(
        harness.channel.asked[1].id, decision(DecisionKind.APPROVE, "U0ADMIN")
    )
    await asked(harness, 3)
    critical = harness.channel.asked[2]
    assert critical.risk is RiskLevel.CRITICAL and critical.required_approvals == 2
    assert isinstance(critical.subject, ToolCallSubject)
    assert critical.subject.arguments == {"command": "rm -rf /"}
    assert calls == [{"command": "cat notes.txt"}]
    assert (await harness.parked(run.id)).status is RunStatus.AWAITING_APPROVAL
    await harness.control.kill(run.id, by="U0ADMIN")


async def test_who_may_decide_a_critical_call(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    calls: list[dict[str, Any]] = []
    channel = waiting()
    channel.members["S0TEAM"] = {"U0BOB"}
    authority = Authority(approvers=["U0ALICE", "S0TEAM"], admins=["U0ADMIN"],
                          members_of=channel.members_of)  # fmt: skip
    harness = await harness_factory(channel=channel, authority=authority,
                                    registry=ToolRegistry([recording_command(calls)]))  # fmt: skip
    anthropic.enqueue(
        plan(["run_command"], risk="critical"),
        tool_use_reply("run_command", {"command": "mkfs /dev/sdb"}),
        text_reply("formatted"),
    )
    run = await harness.start()
    await asked(harness)
    plan_approval = harness.channel.asked[0].id
    service = harness.service

    stranger = await service.decide(plan_approval, decision(DecisionKind.APPROVE, "U0MALLORY"))
    assert isinstance(stranger, Refused) and "not an approver" in stranger.reason
    own = await service.decide(plan_approval, decision(DecisionKind.APPROVE, "U0REQUEST"))
    assert isinstance(own, Refused) and "requesters may not approve" in own.reason
    claimed = await service.decide(
        plan_approval, decision(DecisionKind.APPROVE, "U0ALICE", as_admin=True)
    )
    assert (
        isinstance(claimed, Counted) and claimed.approvals_needed == 1
    )  # as_admin is not ours to claim
    assert (await harness.store.get_approval(plan_approval)).status is ApprovalStatus.PENDING
    by_group = await service.decide(plan_approval, decision(DecisionKind.APPROVE, "U0BOB"))
    assert isinstance(by_group, Concluded)

    await asked(harness, 2)
    call_approval = harness.channel.asked[1].id
    assert isinstance(
        await service.decide(call_approval, decision(DecisionKind.APPROVE, "U0ADMIN")), Concluded
    )
    assert (await harness.finished(run.id)).status is RunStatus.COMPLETED
    assert calls == [{"command": "mkfs /dev/sdb"}]
    refused = [e for e in await harness.store.list_audit(run.id) if e.kind == "decision_refused"]
    assert [e.actor for e in refused] == ["U0MALLORY", "U0REQUEST"]


async def test_an_edit_runs_the_edited_call_and_an_invalid_edit_changes_nothing(
    harness_factory: Factory, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    harness = await harness_factory(channel=waiting())
    anthropic.enqueue(
        plan(["lookup"]),
        tool_use_reply("restart", {"target": "web-1"}),
        text_reply("restarted web-2"),
    )
    run = await harness.start()
    await asked(harness)
    approval = harness.channel.asked[0]
    invalid = await harness.service.decide(
        approval.id, decision(DecisionKind.EDIT, "U0APPROVER", edited_arguments={"target": 2})
    )
    assert isinstance(invalid, Refused) and "invalid at target" in invalid.reason
    assert (await harness.store.get_approval(approval.id)).status is ApprovalStatus.PENDING
    edited = await harness.service.decide(
        approval.id, decision(DecisionKind.EDIT, "U0APPROVER", edited_arguments={"target": "web-2"})
    )
    assert isinstance(edited, Concluded)
    assert (await harness.finished(run.id)).status is RunStatus.COMPLETED
    assert tools.calls == [("restart", {"target": "web-2"})]
    kinds = [e.kind for e in await harness.store.list_audit(run.id)]
    assert kinds.count("tool_call") == 1 and "decision_refused" in kinds


async def test_three_calls_in_one_turn_get_three_results_when_one_is_rejected(
    harness_factory: Factory, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    def decider(approval: Any) -> Decision:
        target = approval.subject.arguments["target"]
        kind = DecisionKind.REJECT if target == "b" else DecisionKind.APPROVE
        return decision(kind, "U0APPROVER", reason="not b" if target == "b" else None)

    harness = await harness_factory(channel=RecordingChannel(decider=decider))
    turn = reply(content=[tool_use_block("restart", {"target": t}) for t in "abc"],
                 stop_reason="tool_use")  # fmt: skip
    anthropic.enqueue(plan(["lookup"]), turn, text_reply("a and c restarted"))
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED
    results = anthropic.message_requests()[-1].tool_results()
    assert len(results) == 3
    assert [bool(r.get("is_error")) for r in results] == [False, True, False]
    assert "not b" in results[1]["content"]
    assert [c[1]["target"] for c in tools.calls] == ["a", "c"]


async def test_approve_for_this_run_covers_later_calls_of_the_tool(
    harness_factory: Factory, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    # Grants are for tools that declare a person can foresee their later calls.
    registry = ToolRegistry([replace(t, grantable=t.name == "restart") for t in tools.registry])
    harness = await harness_factory(registry=registry, channel=RecordingChannel(
        decider=lambda a: decision(DecisionKind.APPROVE_FOR_RUN, "U0APPROVER")))  # fmt: skip
    anthropic.enqueue(
        plan(["lookup"]),
        tool_use_reply("restart", {"target": "a"}),
        tool_use_reply("restart", {"target": "b"}),
        text_reply("both restarted"),
    )
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED
    assert len(harness.channel.asked) == 1
    assert [c[1]["target"] for c in tools.calls] == ["a", "b"]


async def policy_with(timeout: TimeoutPolicy, **changes: Any) -> ApprovalPolicy:
    return ApprovalPolicy(ttl_seconds=1.0, on_timeout={RiskLevel.HIGH: timeout}, **changes)


async def test_timeout_reject_tells_the_model_and_the_run_goes_on(
    harness_factory: Factory, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    harness = await harness_factory(
        channel=waiting(), approvals=await policy_with(TimeoutPolicy.REJECT)
    )
    anthropic.enqueue(plan(["lookup"]), tool_use_reply("restart", {"target": "a"}),
                      text_reply("could not restart"))  # fmt: skip
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED
    result = anthropic.message_requests()[-1].tool_results()[0]
    assert result["is_error"] and "expired" in result["content"]
    assert (
        await harness.store.get_approval(harness.channel.asked[0].id)
    ).status is ApprovalStatus.EXPIRED
    assert "approval_reminder" in harness.channel.kinds()
    assert tools.calls == []


async def test_timeout_halt_ends_the_run_rejected(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    harness = await harness_factory(
        channel=waiting(), approvals=await policy_with(TimeoutPolicy.HALT)
    )
    anthropic.enqueue(plan(["lookup"]), tool_use_reply("restart", {"target": "a"}))
    run = await harness.run()
    assert (run.status, run.error) == (
        RunStatus.REJECTED,
        "the approval expired with nobody deciding",
    )


async def test_timeout_keep_leaves_it_approvable_later(
    harness_factory: Factory, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    harness = await harness_factory(
        channel=waiting(), approvals=await policy_with(TimeoutPolicy.KEEP)
    )
    anthropic.enqueue(
        plan(["lookup"]), tool_use_reply("restart", {"target": "a"}), text_reply("ok")
    )
    run = await harness.start()
    await asked(harness)
    approval = harness.channel.asked[0]
    async with asyncio.timeout(10):
        await harness.channel.wait_for(lambda c: "approval_reminder" in c.kinds())

    async def deadline_passed() -> bool:
        return any(e.kind == "approval_kept" for e in await harness.store.list_audit(run.id))

    await eventually(deadline_passed)
    assert (await harness.store.get_approval(approval.id)).status is ApprovalStatus.PENDING
    await harness.service.decide(approval.id, decision(DecisionKind.APPROVE, "U0APPROVER"))
    assert (await harness.finished(run.id)).status is RunStatus.COMPLETED
    assert tools.calls == [("restart", {"target": "a"})]


async def test_timeout_escalate_asks_the_next_group(
    harness_factory: Factory, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    channel = waiting()
    channel.members["S0LEADS"] = {"U0LEAD"}
    authority = Authority(approvers=["U0APPROVER"], members_of=channel.members_of)
    harness = await harness_factory(
        channel=channel, authority=authority,
        approvals=await policy_with(TimeoutPolicy.ESCALATE, escalation=[("S0LEADS", 30.0)]),
    )  # fmt: skip
    anthropic.enqueue(
        plan(["lookup"]), tool_use_reply("restart", {"target": "a"}), text_reply("ok")
    )
    run = await harness.start()
    async with asyncio.timeout(10):
        await channel.wait_for(lambda c: "approval_escalated" in c.kinds())
    approval = await harness.store.get_approval(channel.asked[0].id)
    assert (approval.hop, approval.approvers) == (1, ["S0LEADS"])
    assert channel.asked[-1].approvers == ["S0LEADS"]  # the next group was asked
    old_approver = await harness.service.decide(
        approval.id, decision(DecisionKind.APPROVE, "U0APPROVER")
    )
    assert isinstance(old_approver, Refused)
    lead = await harness.service.decide(approval.id, decision(DecisionKind.APPROVE, "U0LEAD"))
    assert isinstance(lead, Concluded)
    assert (await harness.finished(run.id)).status is RunStatus.COMPLETED
    assert tools.calls == [("restart", {"target": "a"})]


async def test_kill_while_waiting_cancels_the_approval_fast(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    harness = await harness_factory(channel=waiting())
    anthropic.enqueue(plan(["lookup"]), tool_use_reply("restart", {"target": "a"}))
    run = await harness.start()
    await asked(harness)
    await harness.parked(run.id)
    started = time.perf_counter()
    killed = await harness.control.kill(run.id, by="U0ADMIN", reason="wrong ticket")
    elapsed = time.perf_counter() - started
    assert not isinstance(killed, Refused) and killed.status is RunStatus.KILLED
    assert elapsed < 5  # generous bound on a shared machine; the benchmark reports the real figure
    approval = await harness.store.get_approval(harness.channel.asked[0].id)
    assert approval.status is ApprovalStatus.CANCELLED
    late = await harness.service.decide(approval.id, decision(DecisionKind.APPROVE, "U0APPROVER"))
    assert not isinstance(late, Refused) and late.kind == "already_decided"
    assert (await harness.finished(run.id)).status is RunStatus.KILLED  # waiters wake too
    trail = await harness.store.list_audit(run.id)
    cancelled = [e for e in trail if e.kind == "approval_cancelled"]
    assert [(e.actor, e.data["reason"]) for e in cancelled] == [("U0ADMIN", "its run was killed")]


async def test_halt_refuses_new_runs_until_resumed(
    harness: Harness, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    anthropic.enqueue(plan(["slow"]), tool_use_reply("slow", {}))
    harness.orchestrator.tools.get("slow").timeout_seconds = 60  # type: ignore[union-attr]
    first = await harness.start()
    async with asyncio.timeout(10):
        await tools.slow_started.wait()
    refused = await harness.control.halt(by="U0APPROVER")
    assert isinstance(refused, Refused)
    halted = await harness.control.halt(by="U0ADMIN", reason="incident")
    assert not isinstance(halted, Refused)
    assert (await harness.finished(first.id)).status is RunStatus.KILLED
    halt = await harness.store.get_halt()
    assert halt is not None and halt.halted and halt.reason == "incident"
    assert not isinstance(await harness.control.resume(by="U0ADMIN"), Refused)
    lifted = await harness.store.get_halt()
    assert lifted is not None and not lifted.halted


async def test_kill_takes_effect_quickly(harness_factory: Factory, anthropic: AnthropicStandIn,
                                         tools: Tools) -> None:  # fmt: skip
    harness = await harness_factory()
    harness.orchestrator.tools.get("slow").timeout_seconds = 60  # type: ignore[union-attr]
    timings = []
    for _ in range(5):
        tools.slow_started.clear()
        anthropic.enqueue(plan(["slow"]), tool_use_reply("slow", {}))
        run = await harness.start()
        async with asyncio.timeout(10):
            await tools.slow_started.wait()
        started = time.perf_counter()
        await harness.control.kill(run.id, by="U0ADMIN")
        await harness.finished(run.id)
        task = harness.runner.tasks.get(run.id)
        if task is not None:
            await asyncio.wait([task], timeout=10)
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 5  # the closing note and bench report the real median


async def test_approvals_of_runs_gone_or_over_are_cancelled_at_start(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    harness = await harness_factory()
    subject = ToolCallSubject(subtask_id="s1", tool="restart", arguments={"target": "a"})
    orphan = await harness.store.create_approval(
        Approval(run_id="run_gone", subject=subject, risk=RiskLevel.HIGH)
    )
    over = await harness.store.create_run(Run(goal="old", requester="U0REQUEST"))
    await harness.store.save_run(over.model_copy(update={"status": RunStatus.FAILED}))
    stale = await harness.store.create_approval(
        Approval(run_id=over.id, subject=subject, risk=RiskLevel.HIGH)
    )
    await harness.runner.recover()
    for approval in (orphan, stale):
        assert (await harness.store.get_approval(approval.id)).status is ApprovalStatus.CANCELLED

    def settled() -> list[str]:
        return [e.approval.id for e in harness.channel.events  # type: ignore[union-attr]
                if e.kind == "approval_settled"]  # fmt: skip

    async def told() -> bool:
        return settled() == [stale.id]

    await eventually(told, timeout=10)
    # Audited and signalled like every other close; a run that is gone has no trail to write.
    cancelled = [e for e in await harness.store.list_audit(over.id)
                 if e.kind == "approval_cancelled"]  # fmt: skip
    assert [(e.data["approval_id"], e.data["reason"]) for e in cancelled] == [
        (stale.id, "its run is over")
    ]
    assert await harness.store.list_audit("run_gone") == []
    assert settled() == [stale.id]


async def test_a_failing_preview_still_asks_and_says_why(
    harness_factory: Factory, anthropic: AnthropicStandIn, tmp_path: Any
) -> None:
    harness = await harness_factory(
        channel=RecordingChannel(
            decider=lambda a: decision(
                DecisionKind.REJECT
                if isinstance(a.subject, ToolCallSubject)
                else DecisionKind.APPROVE,
                "U0APPROVER",
            )
        ),
        registry=ToolRegistry([write_file_tool(workspace=tmp_path)]),
    )
    anthropic.enqueue(
        plan(["write_file"]),
        tool_use_reply("write_file", {"path": "../../etc/cron.d/x", "content": "* * * * * boom"}),
        text_reply("gave up"),
    )
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED
    call = harness.channel.asked[-1]
    assert isinstance(call.subject, ToolCallSubject)
    assert call.subject.preview is not None and call.subject.preview.startswith("(no preview:")


async def test_a_crash_inside_the_run_ends_it_failed_not_running(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    def broken_policy(arguments: dict[str, Any]) -> RiskLevel:
        raise ZeroDivisionError("bug in a risk rule")

    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        return "unreachable"

    tool = Tool(name="odd", description="Odd.", input_schema={"type": "object"},
                risk=RiskLevel.LOW, risk_for=broken_policy, handler=handler)  # fmt: skip
    harness = await harness_factory(registry=ToolRegistry([tool]))
    anthropic.enqueue(plan(["odd"]), tool_use_reply("odd", {}))
    run = await harness.run()
    assert run.status is RunStatus.FAILED
    assert run.error == "internal error: ZeroDivisionError: bug in a risk rule"
    assert harness.channel.kinds()[-1] == "run_finished"


class _Asking(RecordingChannel):
    """A channel that says when a tool call's request was sent out; plans are approved."""

    def __init__(self, *, fails: bool = False) -> None:
        plans = approve_all()
        super().__init__(decider=lambda a: plans(a) if a.subject.kind == "plan" else None)
        self.sent = asyncio.Event()
        self.fails = fails

    async def request_decision(self, approval: Approval) -> None:
        await super().request_decision(approval)
        if approval.subject.kind == "plan":
            return
        self.sent.set()
        if self.fails:
            raise RuntimeError("the channel broke after asking")


async def _settled_with_its_run(harness: Harness, run: Run) -> None:
    """The run's request was closed as the run ended: cancelled, audited and signalled."""
    asked = harness.channel.asked[-1]
    assert isinstance(asked.subject, ToolCallSubject)
    assert await harness.store.list_pending_approvals(run_id=run.id) == []
    closed = await harness.store.get_approval(asked.id)
    assert (closed.status, closed.decided_by) == (ApprovalStatus.CANCELLED, "airlock")
    trail = [e for e in await harness.store.list_audit(run.id) if e.kind == "approval_cancelled"]
    assert [(e.data["approval_id"], e.data["reason"]) for e in trail] == [
        (asked.id, "its run is over")
    ]


async def test_a_run_that_ends_while_a_step_waits_for_a_person_cancels_the_request(
    harness_factory: Factory, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    """Two steps at once: one waits for a person, the other makes the run's last allowed model
    call and the run ends over budget. Its request ends with it, not left pending (buttons
    live, no trail, no deadline) until some process starts over the store."""
    channel = _Asking()

    async def after_the_ask(arguments: dict[str, Any], context: ToolContext) -> str:
        await channel.sent.wait()
        return "looked"

    restart = tools.registry.get("restart")
    assert restart is not None
    look = Tool(name="look", description="Looks.", risk=RiskLevel.LOW,
                input_schema={"type": "object"}, handler=after_the_ask)  # fmt: skip
    harness = await harness_factory(
        channel=channel, registry=ToolRegistry([restart, look]),
        budget=BudgetLimits(llm_calls=3, tokens=10**7, usd=100.0),
    )  # fmt: skip
    steps = [
        {"id": "s1", "description": "restart web", "required_tools": ["restart"],
         "depends_on": [], "risk_level": "high"},
        {"id": "s2", "description": "look around", "required_tools": ["look"],
         "depends_on": [], "risk_level": "low"},
    ]  # fmt: skip

    def respond(request: Any) -> Any:
        body = json.dumps(request.body)
        if "Your subtask (s1)" in body:
            return tool_use_reply("restart", {"target": "web"})
        if "Your subtask (s2)" in body:
            return tool_use_reply("look", {})
        return tool_use_reply("submit_plan", {"subtasks": steps})

    anthropic.set_default(respond)
    run = await harness.finished((await harness.start()).id)
    assert run.status is RunStatus.BUDGET_EXCEEDED, run.error
    await _settled_with_its_run(harness, run)


async def test_a_run_that_crashes_after_asking_cancels_the_request(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    harness = await harness_factory(channel=_Asking(fails=True))
    anthropic.enqueue(plan(["restart"]), tool_use_reply("restart", {"target": "web"}))
    run = await harness.finished((await harness.start()).id)
    assert run.status is RunStatus.FAILED and "the channel broke" in str(run.error)
    await _settled_with_its_run(harness, run)


async def test_a_decision_resumes_its_run_with_one_claim_save_and_is_audited_when_it_returns(
    harness_factory: Factory, anthropic: AnthropicStandIn, store: Store
) -> None:
    seen: list[Run] = []
    db: Any = getattr(store, "_db")  # noqa: B009 - the SQLite connection's commit counter
    commits: list[int] = []

    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        commits.append(db.commits)
        seen.append(await store.get_run(context.run.id))  # the run as the tool starts
        return "restarted"

    restart = Tool(name="restart", description="Restart a service.", risk=RiskLevel.HIGH,
                   input_schema={"type": "object", "properties": {"target": {"type": "string"}}},
                   handler=handler)  # fmt: skip
    harness = await harness_factory(channel=waiting(), registry=ToolRegistry([restart]))
    anthropic.enqueue(tool_use_reply("restart", {"target": "web"}), text_reply("done"))
    run = await harness.start(plan=Plan(subtasks=[Subtask(id="s1", description="restart web")]))
    await asked(harness)
    parked = await harness.parked(run.id)
    assert parked.status is RunStatus.AWAITING_APPROVAL
    commits.append(db.commits)
    outcome = await harness.service.decide(
        harness.channel.asked[0].id, decision(DecisionKind.APPROVE, "U0ADMIN")
    )
    assert isinstance(outcome, Concluded)
    # Durable when decide returns, whatever the resumed run is doing: the decision's line.
    decided = [e for e in await store.list_audit(run.id) if e.kind == "approval_decided"]
    assert [e.data["status"] for e in decided] == ["approved"]
    assert (await harness.finished(run.id)).status is RunStatus.COMPLETED
    # The claim wrote the owner and the status back to running in one save.
    [started] = seen
    assert started.version == parked.version + 1
    assert started.status is RunStatus.RUNNING and started.owner == harness.runner.name
    trail = await store.list_audit(run.id)
    claims = [e for e in trail if e.kind == "run_claimed"]
    assert claims[-1].data["status"] == "awaiting_approval"
    assert verify_chain(trail) == []
    # Durable writes from the decision to the tool's start (7 before the claim and the
    # approval's use joined the writes they belong with): the decision; its signal and its
    # audit line (one commit when they meet in a group); the claim with its run_claimed
    # line; the approval used up with the call's journal start and tool_call line.
    before, at_start = commits
    assert at_start - before <= 5, at_start - before
