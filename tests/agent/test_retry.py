"""Retrying a failed run: the next attempt resumes from the checkpoint and repeats no call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agent_core.approvals import Refused
from agent_core.llm.budget import BudgetLimits
from agent_core.models import RunStatus
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    fault,
    text_reply,
    tool_use_reply,
)
from tests.agent.conftest import Harness, Tools

Factory = Callable[..., Awaitable[Harness]]


def plan(tools: list[str], risk: str = "high") -> Any:
    subtask = {"id": "s1", "description": "restart both", "required_tools": tools,
               "depends_on": [], "risk_level": risk}  # fmt: skip
    return tool_use_reply("submit_plan", {"subtasks": [subtask]})


async def test_a_retry_after_two_approved_calls_does_not_make_them_again(
    harness: Harness, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    anthropic.enqueue(
        plan(["restart"]),
        tool_use_reply("restart", {"target": "web"}),
        tool_use_reply("restart", {"target": "api"}),
        fault(500, message="the API fell over"),
    )
    failed = await harness.run()
    assert failed.status is RunStatus.FAILED and "the model call failed" in (failed.error or "")
    assert [c[1]["target"] for c in tools.calls] == ["web", "api"]

    retried = await harness.control.retry(failed.id, by="U0REQUEST")
    assert not isinstance(retried, Refused)
    assert retried.status is RunStatus.QUEUED and retried.attempt == 2
    anthropic.enqueue(text_reply("both restarted"))
    await harness.runner.submit(retried.id)
    done = await harness.finished(retried.id)
    assert done.status is RunStatus.COMPLETED and done.attempt == 2
    assert [c[1]["target"] for c in tools.calls] == ["web", "api"]  # not executed again
    events = await harness.store.list_audit(done.id)
    assert [e.data["arguments"]["target"] for e in events if e.kind == "tool_call"] == [
        "web", "api"
    ]  # fmt: skip
    assert [e.data["attempt"] for e in events if e.kind == "run_retried"] == [2]
    resumed = anthropic.requests[-1].last_user_blocks()
    assert [b["type"] for b in resumed] == ["tool_result"]  # the model saw both results again


async def test_only_a_failed_run_may_be_retried_and_only_by_its_requester_or_an_admin(
    harness: Harness, anthropic: AnthropicStandIn
) -> None:
    anthropic.enqueue(plan(["lookup"], "low"), text_reply("fine"))
    completed = await harness.run()
    refused = await harness.control.retry(completed.id, by="U0ADMIN")
    assert isinstance(refused, Refused) and "it is completed" in refused.reason
    anthropic.enqueue(fault(500))
    failed = await harness.run()
    stranger = await harness.control.retry(failed.id, by="U0STRANGER")
    assert isinstance(stranger, Refused) and "only an admin or the person" in stranger.reason
    missing = await harness.control.retry("run_nope", by="U0ADMIN")
    assert isinstance(missing, Refused)


async def test_a_budget_stopped_run_gets_a_fresh_budget_when_retried(
    harness_factory: Factory, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    harness = await harness_factory(budget=BudgetLimits(llm_calls=2, tokens=10_000_000, usd=100.0))
    anthropic.enqueue(plan(["lookup"], "low"), tool_use_reply("lookup", {"target": "db"}))
    stopped = await harness.run()
    assert stopped.status is RunStatus.BUDGET_EXCEEDED and stopped.spend.llm_calls == 2
    retried = await harness.control.retry(stopped.id, by="U0ADMIN")
    assert not isinstance(retried, Refused)
    anthropic.enqueue(text_reply("db is fine"))
    await harness.runner.submit(retried.id)
    done = await harness.finished(retried.id)
    assert done.status is RunStatus.COMPLETED, done.error
    assert done.spend.llm_calls == 3  # the total stays true; the limit counts from the retry
    assert [c[0] for c in tools.calls] == ["lookup"]
