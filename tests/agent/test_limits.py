"""Limits on runs in the agent core: the line for run slots, and daily spend counted per call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from agent_core.channel import RunEvent, RunFinished, RunQueued
from agent_core.models import Decision, DecisionKind, Run, RunStatus
from agent_core.runs.limits import SpendLedger
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.testing.channel import RecordingChannel
from tests.agent.conftest import Harness
from tests.support import eventually

Factory = Callable[..., Awaitable[Harness]]


def plan(tool: str | None = None) -> Any:
    subtask = {"id": "s1", "description": "do it", "required_tools": [tool] if tool else [],
               "depends_on": [], "risk_level": "low"}  # fmt: skip
    return tool_use_reply("submit_plan", {"subtasks": [subtask]})


def places(events: list[RunEvent], run: Run) -> list[int]:
    return [e.position for e in events if isinstance(e, RunQueued) and e.run.id == run.id]


def first(events: list[RunEvent], run: Run, kind: str) -> int:
    return next(i for i, e in enumerate(events) if e.run.id == run.id and e.kind == kind)


async def test_runs_beyond_the_limit_wait_their_turn_and_hear_their_place(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    harness = await harness_factory(max_concurrent_runs=1)
    # One run at a time, so the model is asked in this order and each run gets its own answer.
    for name in "abc":
        anthropic.enqueue(plan(), text_reply(f"{name} done"))
    runs = [await harness.store.create_run(Run(goal=f"goal {n}", requester="U0REQUEST"))
            for n in "abc"]  # fmt: skip
    for run in runs:
        await harness.runner.submit(run.id)
    finished = [await harness.finished(run.id) for run in runs]

    assert [r.status for r in finished] == [RunStatus.COMPLETED] * 3
    events = harness.channel.events
    results = [e.result for e in events if isinstance(e, RunFinished)]
    assert results == ["a done", "b done", "c done"]
    a, b, c = runs
    assert [places(events, run) for run in runs] == [[], [1, 0], [2, 1, 0]]
    # Nobody starts before the one ahead of it is over.
    assert first(events, a, "run_finished") < first(events, b, "plan_ready")
    assert first(events, b, "run_finished") < first(events, c, "plan_ready")
    assert harness.runner.slots.working == set() and not harness.runner.slots.waiting


async def test_a_parked_run_frees_its_slot_and_its_resume_waits_for_one(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    channel = RecordingChannel(decider=lambda approval: None)  # the test decides
    harness = await harness_factory(channel=channel, max_concurrent_runs=1)
    release = asyncio.Event()

    async def held(request: Any) -> Any:
        await release.wait()  # the model "thinks" until the test lets it answer
        return text_reply("b done")

    anthropic.enqueue(
        plan("lookup"), tool_use_reply("restart", {"target": "web"}),  # a parks (HIGH)
        plan(), held,  # b works, and is still working when a's approval comes
        text_reply("a done"),
    )  # fmt: skip
    a = await harness.start("restart web")
    await harness.parked(a.id)

    async def slot_freed() -> bool:
        return not harness.runner.slots.working

    await eventually(slot_freed)
    b = await harness.start("look around")
    async with asyncio.timeout(10):
        await anthropic.wait_for_requests(4)  # b's model call is being held
    approve = Decision(kind=DecisionKind.APPROVE, by="U0APPROVER")
    await harness.service.decide(channel.asked[0].id, approve)
    async with asyncio.timeout(10):
        await channel.wait_for(lambda c: places(c.events, a) == [1])
    assert (await harness.store.get_run(a.id)).status is RunStatus.AWAITING_APPROVAL
    release.set()

    assert (await harness.finished(b.id)).status is RunStatus.COMPLETED
    assert (await harness.finished(a.id)).status is RunStatus.COMPLETED
    assert places(channel.events, b) == [] and places(channel.events, a) == [1, 0]
    assert first(channel.events, b, "run_finished") < first(channel.events, a, "run_finished")


async def test_a_run_killed_in_line_ends_there_and_the_line_moves_up(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    harness = await harness_factory(max_concurrent_runs=1)
    release = asyncio.Event()

    async def held(request: Any) -> Any:
        await release.wait()
        return plan()

    anthropic.enqueue(held, text_reply("a done"), plan(), text_reply("c done"))
    a, b, c = [await harness.start(f"goal {n}") for n in "abc"]
    async with asyncio.timeout(10):
        await harness.channel.wait_for(lambda ch: places(ch.events, c) == [2])
    await harness.control.kill(b.id, by="U0ADMIN", reason="not needed")
    async with asyncio.timeout(10):
        await harness.channel.wait_for(lambda ch: places(ch.events, c) == [2, 1])
    release.set()

    assert (await harness.finished(c.id)).status is RunStatus.COMPLETED
    assert (await harness.store.get_run(a.id)).status is RunStatus.COMPLETED
    killed = [e for e in harness.channel.events if e.run.id == b.id]
    assert [e.kind for e in killed] == ["run_queued", "run_finished"]
    assert isinstance(killed[-1], RunFinished) and killed[-1].result == "not needed"


async def test_every_model_call_counts_in_the_days_totals(
    harness: Harness, anthropic: AnthropicStandIn
) -> None:
    ledger = SpendLedger(store=harness.store)
    harness.orchestrator.ledger = ledger
    anthropic.enqueue(plan("lookup"), tool_use_reply("lookup", {"target": "web"}),
                      text_reply("web is fine"))  # fmt: skip
    run = await harness.run()
    assert run.spend.llm_calls == 3 and run.spend.cost_usd > 0
    assert await ledger.today() == await ledger.today(run.requester) == run.spend.cost_usd
    assert await ledger.today("U0SOMEONE_ELSE") == 0.0
