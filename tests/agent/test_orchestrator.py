"""Runs end to end through the real SDK against the Anthropic stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from agent_core.approvals import Refused
from agent_core.llm.budget import BudgetLimits
from agent_core.models import ApprovalStatus, RiskLevel, RunStatus, ToolCallSubject
from agent_core.runs.executor import ExecutorLimits
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    reply,
    text_block,
    text_reply,
    tool_use_block,
    tool_use_reply,
)
from agent_core.testing.channel import RecordingChannel, reject_all
from agent_core.tools import Tool, ToolContext, ToolRegistry
from tests.agent.conftest import Harness, Tools


def sub(
    id: str, tools: list[str], deps: list[str] | None = None, risk: str = "low"
) -> dict[str, Any]:
    return {
        "id": id,
        "description": f"do {id}",
        "required_tools": tools,
        "depends_on": deps or [],
        "risk_level": risk,
    }


def plan(*subtasks: dict[str, Any]) -> Any:
    return tool_use_reply("submit_plan", {"subtasks": list(subtasks)})


def executor_requests(server: AnthropicStandIn) -> list[RecordedRequest]:
    return [
        r for r in server.message_requests() if r.body and r.body["model"] == "claude-sonnet-4-6"
    ]


def first_user_text(request: RecordedRequest) -> str:
    content = request.messages[0]["content"]
    return content if isinstance(content, str) else ""


async def test_a_three_step_plan_runs_in_dependency_order_and_adds_up_usage(
    harness: Harness, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    anthropic.enqueue(
        plan(sub("s1", ["lookup"]), sub("s2", ["lookup"]), sub("s3", ["lookup"], ["s1", "s2"])),
        # s1 and s2 run at once; each asks for one lookup, then summarises.
        lambda r: tool_use_reply(
            "lookup", {"target": "web" if "do s1" in first_user_text(r) else "db"}
        ),
        lambda r: tool_use_reply(
            "lookup", {"target": "web" if "do s1" in first_user_text(r) else "db"}
        ),
        lambda r: text_reply("web fine" if "do s1" in first_user_text(r) else "db fine"),
        lambda r: text_reply("web fine" if "do s1" in first_user_text(r) else "db fine"),
        text_reply("all healthy"),
    )
    run = await harness.run()

    assert run.status is RunStatus.COMPLETED, run.error
    assert run.error is None
    assert [run.results[s].output for s in ("s1", "s2", "s3")] == [
        "web fine",
        "db fine",
        "all healthy",
    ]
    assert sorted(call[1]["target"] for call in tools.calls) == ["db", "web"]
    last = executor_requests(anthropic)[-1]
    assert "web fine" in first_user_text(last) and "db fine" in first_user_text(last)

    usage = [reply["usage"] for reply in anthropic.replies]
    spend = run.spend
    assert spend.llm_calls == len(anthropic.replies) == 6
    assert spend.input_tokens == sum(u["input_tokens"] for u in usage)
    assert spend.output_tokens == sum(u["output_tokens"] for u in usage)
    assert spend.cache_write_tokens == sum(u["cache_creation_input_tokens"] for u in usage)
    assert spend.cache_read_tokens == sum(u["cache_read_input_tokens"] for u in usage)
    assert spend.cache_read_tokens > 0
    for request in executor_requests(anthropic):
        assert request.body is not None
        assert request.body["system"][-1]["cache_control"] == {"type": "ephemeral"}
        assert request.body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    kinds = harness.channel.kinds()
    assert kinds[0] == "plan_ready" and kinds[-1] == "run_finished"
    assert kinds.count("step_started") == kinds.count("step_finished") == 3


async def test_an_invalid_plan_is_repaired(harness: Harness, anthropic: AnthropicStandIn) -> None:
    anthropic.enqueue(
        plan(sub("s1", ["teleport"])),
        plan(sub("s1", ["lookup"])),
        text_reply("done"),
    )
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED
    feedback = anthropic.message_requests()[1].tool_results()
    assert feedback[0]["is_error"] and "unknown tool 'teleport'" in feedback[0]["content"]


async def test_a_plan_still_invalid_after_the_retries_fails_the_run(
    harness_factory: Callable[..., Awaitable[Harness]], anthropic: AnthropicStandIn
) -> None:
    harness = await harness_factory(max_plan_retries=1)
    anthropic.enqueue(plan(sub("s1", ["teleport"])), plan(sub("s1", ["warp"])))
    run = await harness.run()
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "no valid plan" in run.error and "'warp'" in run.error


async def test_a_cyclic_plan_is_refused(
    harness_factory: Callable[..., Awaitable[Harness]], anthropic: AnthropicStandIn
) -> None:
    harness = await harness_factory(max_plan_retries=0)
    anthropic.enqueue(plan(sub("a", ["lookup"], ["b"]), sub("b", ["lookup"], ["a"])))
    run = await harness.run()
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "cycle" in run.error


async def test_a_plain_json_array_is_accepted_as_a_plan(
    harness: Harness, anthropic: AnthropicStandIn
) -> None:
    anthropic.enqueue(
        text_reply('Here it is: [{"id": "s1", "description": "look", "required_tools": ["lookup"], '
                   '"depends_on": [], "risk_level": "low"}]'),
        text_reply("looked"),
    )  # fmt: skip
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED and run.results["s1"].output == "looked"


async def test_tool_mistakes_reach_the_model_as_errors(
    harness: Harness, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    anthropic.enqueue(
        plan(sub("s1", ["lookup"])),
        reply(content=[tool_use_block("teleport", {}), tool_use_block("lookup", {"target": 3})],
              stop_reason="tool_use"),
        tool_use_reply("broken", {"target": "x"}),
        tool_use_reply("refuse", {"target": "x"}),
        tool_use_reply("lookup", {"target": "web"}),
        text_reply("web is healthy"),
    )  # fmt: skip
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED
    results = [r.tool_results() for r in executor_requests(anthropic)[1:5]]
    unknown, invalid = results[0]
    assert unknown["is_error"] and "unknown tool 'teleport'" in unknown["content"]
    assert "lookup" in unknown["content"]
    assert invalid["is_error"] and "target" in invalid["content"] and "string" in invalid["content"]
    assert results[1][0]["is_error"] and "RuntimeError: disk on fire" in results[1][0]["content"]
    assert results[2][0]["is_error"] and "nothing to see" in results[2][0]["content"]
    assert not results[3][0].get("is_error")
    assert results[3][0]["content"].startswith('<tool_output tool="lookup" untrusted="true">')


async def test_a_tool_that_times_out_is_reported_to_the_model(
    harness: Harness, anthropic: AnthropicStandIn
) -> None:
    anthropic.enqueue(plan(sub("s1", ["slow"])), tool_use_reply("slow", {}), text_reply("gave up"))
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED
    result = executor_requests(anthropic)[1].tool_results()[0]
    assert result["is_error"] and "timed out after 0.2 s" in result["content"]


async def test_the_same_call_repeated_stops_the_subtask(
    harness: Harness, anthropic: AnthropicStandIn
) -> None:
    same = tool_use_reply("lookup", {"target": "web"})
    anthropic.enqueue(plan(sub("s1", ["lookup"])), same, same, same)
    run = await harness.run()
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "loop detected: lookup was called 3 times" in run.error


async def test_max_tokens_is_continued_once_then_fails(
    harness: Harness, anthropic: AnthropicStandIn
) -> None:
    cut = reply(content=[text_block("partial")], stop_reason="max_tokens")
    anthropic.enqueue(plan(sub("s1", ["lookup"])), cut, cut)
    run = await harness.run()
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "cut off at max_tokens" in run.error


async def test_a_refusal_fails_the_subtask_with_the_reason(
    harness: Harness, anthropic: AnthropicStandIn
) -> None:
    anthropic.enqueue(
        plan(sub("s1", ["lookup"])),
        reply(content=[text_block("I can't help with that.")], stop_reason="refusal"),
    )
    run = await harness.run()
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "declined" in run.error and "can't help" in run.error


async def test_pause_turn_is_resumed(harness: Harness, anthropic: AnthropicStandIn) -> None:
    anthropic.enqueue(
        plan(sub("s1", ["lookup"])),
        reply(content=[text_block("working")], stop_reason="pause_turn"),
        text_reply("finished"),
    )
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED and run.results["s1"].output == "finished"


async def test_budget_warns_at_half_and_stops_at_the_limit(
    harness_factory: Callable[..., Awaitable[Harness]], anthropic: AnthropicStandIn
) -> None:
    harness = await harness_factory(budget=BudgetLimits(llm_calls=4, tokens=10**9, usd=100.0))
    anthropic.enqueue(
        plan(sub("s1", ["lookup"])),
        tool_use_reply("lookup", {"target": "a"}),
        tool_use_reply("lookup", {"target": "b"}),
        tool_use_reply("lookup", {"target": "c"}),
    )
    run = await harness.run()
    assert run.status is RunStatus.BUDGET_EXCEEDED
    assert run.error == "llm_calls budget exhausted: 4 of 4"
    warnings = [e for e in harness.channel.events if e.kind == "budget_warning"]
    assert len(warnings) == 1 and warnings[0].used == 2  # type: ignore[union-attr]
    assert run.spend.llm_calls == 4


async def test_a_run_past_its_wall_clock_limit_times_out(
    harness_factory: Callable[..., Awaitable[Harness]], anthropic: AnthropicStandIn
) -> None:
    harness = await harness_factory(
        run_timeout_seconds=0.5, executor=ExecutorLimits(tool_timeout_seconds=30)
    )
    anthropic.enqueue(plan(sub("s1", ["slow"])), tool_use_reply("slow", {}))
    harness.orchestrator.tools.get("slow").timeout_seconds = None  # type: ignore[union-attr]
    run = await harness.run()
    assert run.status is RunStatus.TIMED_OUT
    assert run.error == "the run took longer than 0.5 s"


async def test_a_risky_plan_waits_for_approval_and_a_rejection_ends_it(
    harness_factory: Callable[..., Awaitable[Harness]], anthropic: AnthropicStandIn, tools: Tools
) -> None:
    harness = await harness_factory(
        channel=RecordingChannel(decider=reject_all(reason="not today"))
    )
    anthropic.enqueue(plan(sub("s1", ["restart"], risk="low")))
    run = await harness.run()
    assert run.status is RunStatus.REJECTED
    assert run.plan is not None and run.plan.subtasks[0].risk_level is RiskLevel.HIGH
    assert run.error == "plan rejected by local:tests: not today"
    assert tools.calls == []


async def test_a_high_risk_call_runs_only_after_approval(
    harness: Harness, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    anthropic.enqueue(
        plan(sub("s1", ["restart"], risk="high")),
        tool_use_reply("restart", {"target": "web"}),
        text_reply("restarted"),
    )
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED
    asked = harness.channel.asked
    assert [type(a.subject).__name__ for a in asked] == ["PlanSubject", "ToolCallSubject"]
    approval = await harness.store.get_approval(asked[1].id)
    assert approval.status is ApprovalStatus.APPROVED and approval.consumed_at is not None
    assert isinstance(approval.subject, ToolCallSubject)
    assert approval.subject.arguments == {"target": "web"}
    assert tools.calls == [("restart", {"target": "web"})]


async def test_a_rejected_call_tells_the_model_why(
    harness_factory: Callable[..., Awaitable[Harness]], anthropic: AnthropicStandIn, tools: Tools
) -> None:
    harness = await harness_factory(
        channel=RecordingChannel(decider=reject_all(reason="use blue/green"))
    )
    anthropic.enqueue(
        plan(sub("s1", ["lookup"])),
        tool_use_reply("restart", {"target": "web"}),
        text_reply("did not restart"),
    )
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED
    result = executor_requests(anthropic)[1].tool_results()[0]
    assert result["is_error"] and "use blue/green" in result["content"]
    assert tools.calls == []


async def test_killing_a_run_ends_it_as_killed(
    harness: Harness, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    anthropic.enqueue(plan(sub("s1", ["slow"])), tool_use_reply("slow", {}))
    harness.orchestrator.tools.get("slow").timeout_seconds = 60  # type: ignore[union-attr]
    created = await harness.start()
    async with asyncio.timeout(10):
        await tools.slow_started.wait()
    killed = await harness.control.kill(created.id, by="U0REQUEST", reason="enough")
    assert not isinstance(killed, Refused)
    run = await harness.finished(created.id)
    assert (run.status, run.error) == (RunStatus.KILLED, "enough")
    async with asyncio.timeout(10):
        await harness.channel.wait_for(lambda c: "run_finished" in c.kinds())
    task = harness.runner.tasks.get(created.id)
    if task is not None:  # the cancelled task may still be closing down
        await asyncio.wait([task], timeout=10)
        assert task.cancelled()


async def test_a_dry_run_plans_and_stops(
    harness: Harness, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    anthropic.enqueue(plan(sub("s1", ["restart"], risk="critical")))
    run = await harness.run(dry_run=True)
    assert run.status is RunStatus.COMPLETED
    assert harness.channel.asked == [] and tools.calls == []
    assert harness.channel.kinds() == ["plan_ready", "run_finished"]


async def test_a_low_risk_plan_is_saved_with_its_line_and_the_move_to_running_in_one_write(
    harness_factory: Callable[..., Awaitable[Harness]], anthropic: AnthropicStandIn
) -> None:
    seen: list[tuple[int, Any]] = []

    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        store: Any = harness.store
        seen.append((store._db.commits, await store.get_run(context.run.id)))
        return "web is healthy"

    lookup = Tool(name="lookup", description="Look a host up.", risk=RiskLevel.LOW,
                  input_schema={"type": "object"}, handler=handler)  # fmt: skip
    harness = await harness_factory(registry=ToolRegistry([lookup]))
    anthropic.enqueue(plan(sub("s1", ["lookup"])), tool_use_reply("lookup", {}),
                      text_reply("fine"))  # fmt: skip
    store: Any = harness.store
    before = store._db.commits
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED, run.error
    [(at_start, running)] = seen
    # Created (1), claimed into planning (2), planned and running (3): the tool runs before
    # the turn that asked for it is checkpointed with its result.
    assert running.status is RunStatus.RUNNING and running.version == 3
    # The run created, the lease, the claim with its line, the plan with the planning call's
    # line, its own and the move to running, the first turn with its line, the call's start:
    # one commit each (10 before: the move to planning, the planning call's line, the plan's
    # line and the move to running were writes of their own).
    assert at_start - before <= 6, at_start - before
    kinds = [e.kind for e in await harness.store.list_audit(run.id)]
    assert kinds[:4] == ["run_claimed", "llm_call", "plan_created", "llm_call"]
