"""The path from a decision to its tool's start: how many store calls it takes, and that each
read it no longer makes still guards what it guarded.

The host reads a decided run once (is it a terminal's? then the resume and the settled notice
start from that read), and in the process that concluded the approval the notice takes the
approval from the signal. What those reads caught is caught elsewhere now: a run changed after
the host's read fails the claim's compare-and-set and is read again; a lease lost meanwhile
fails the claim's lease check; a signal from another process carries no approval, so the
notice reads it there.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import pytest
from pydantic import ValidationError

from agent_core.approvals import close_undecided
from agent_core.audit import events
from agent_core.channel import ApprovalSettled
from agent_core.models import (
    AlreadyDecided,
    ApprovalDecided,
    ApprovalStatus,
    Concluded,
    Decision,
    DecisionKind,
    Plan,
    RiskLevel,
    Run,
    RunStatus,
    Subtask,
)
from agent_core.runs.claims import LocalClaims
from agent_core.store import Store
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.testing.channel import RecordingChannel
from agent_core.tools import Tool, ToolContext, ToolRegistry
from tests.agent.conftest import Harness
from tests.support import eventually

Factory = Callable[..., Awaitable[Harness]]

_INSIDE: ContextVar[bool] = ContextVar("test_store_call", default=False)

PATH = Counter({
    "get_approval": 2,  # the decision's check; the gate's (the notice's is the signal's)
    "record_decision": 1,
    "publish": 1,
    "append_audit": 2,  # approval_decided; the tool_call line, held for the start's commit
    "get_run": 1,  # the host's: the terminal check, the resume and the notice share it
    "take_lease": 1,
    "holds_lease": 3,  # the claim's, the gate's (asks nobody if lost), the tool's
    "save_run": 1,  # the claim, with run_claimed
    "load_checkpoint": 1,
    "tool_calls": 1,  # the journal: did this call run before?
    "save_tool_call": 1,  # started, in one commit with the approval's use
})  # fmt: skip
"""The store calls from ``decide`` to the tool's start, one process (18 before 2026-12-05's
cut: the run read three times and the approval twice by the host and the run task)."""


@contextmanager
def counting(store: Store) -> Iterator[list[str]]:
    """The store's methods called while the block runs, by name; a method's own calls to
    others count as one (as ``python -m bench.approvals`` counts them)."""
    calls: list[str] = []
    names = [n for n in dir(store) if not n.startswith("_")]
    for name in names:
        method = getattr(store, name)
        if not inspect.iscoroutinefunction(method):
            continue

        async def call(*args: Any, __m: Any = method, __n: str = name, **kwargs: Any) -> Any:
            if _INSIDE.get():
                return await __m(*args, **kwargs)
            calls.append(__n)
            token = _INSIDE.set(True)
            try:
                return await __m(*args, **kwargs)
            finally:
                _INSIDE.reset(token)

        setattr(store, name, call)
    try:
        yield calls
    finally:
        for name in names:
            vars(store).pop(name, None)  # the class's methods again


def waiting() -> RecordingChannel:
    return RecordingChannel(decider=lambda approval: None)


def restart_tool(
    started: list[str],
    at_start: list[list[str]] | None = None,
    calls: list[str] | None = None,
    began: asyncio.Event | None = None,
) -> Tool:
    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        started.append(context.run.id)
        if at_start is not None and calls is not None:
            at_start.append(list(calls))
        if began is not None:
            began.set()
        return "restarted"

    return Tool(name="restart", description="Restart a service.", risk=RiskLevel.HIGH,
                input_schema={"type": "object", "properties": {"target": {"type": "string"}}},
                handler=handler)  # fmt: skip


def hold_tool(release: asyncio.Event, started: asyncio.Event) -> Tool:
    """A LOW tool that keeps its run (and so the only slot) busy until ``release``."""

    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        started.set()
        await release.wait()
        return "held"

    return Tool(name="hold", description="Hold.", risk=RiskLevel.LOW,
                input_schema={"type": "object", "properties": {}}, handler=handler)  # fmt: skip


def one_step() -> Plan:
    return Plan(subtasks=[Subtask(id="s1", description="do it")])


def approve() -> Decision:
    return Decision(kind=DecisionKind.APPROVE, by="U0ADMIN")


async def asked(harness: Harness, count: int = 1) -> None:
    async with asyncio.timeout(10):
        await harness.channel.wait_for(lambda c: len(c.asked) >= count)


async def test_a_decision_reaches_its_tool_in_fifteen_store_calls(
    harness_factory: Factory, anthropic: AnthropicStandIn, store: Store
) -> None:
    started: list[str] = []
    at_start: list[list[str]] = []
    began = asyncio.Event()
    with counting(store) as calls:
        registry = ToolRegistry([restart_tool(started, at_start, calls, began)])
        harness = await harness_factory(channel=waiting(), registry=registry)
        anthropic.enqueue(tool_use_reply("restart", {"target": "web"}), text_reply("done"))
        run = await harness.start(plan=one_step())
        await asked(harness)
        await harness.parked(run.id)
        calls.clear()
        await harness.service.decide(harness.channel.asked[0].id, approve())
        async with asyncio.timeout(10):  # the test reads nothing meanwhile: the path alone
            await began.wait()
        assert (await harness.finished(run.id)).status is RunStatus.COMPLETED
    [path] = at_start
    # A lease renewal may fall in the window on a slow machine: not the path's own.
    assert Counter(c for c in path if c != "renew_lease") == PATH, path
    settled = [e for e in harness.channel.events if isinstance(e, ApprovalSettled)]
    assert [(e.approval.status, e.run.id) for e in settled] == [(ApprovalStatus.APPROVED, run.id)]


async def parked_behind_a_busy_slot(
    harness_factory: Factory, anthropic: AnthropicStandIn, started: list[str], *, goes_on: bool
) -> tuple[Harness, Run, asyncio.Event]:
    """A run parked for a HIGH call, decided while the one slot is busy: its task has the run
    as the host read it, and waits in line. Set the event to free the slot. ``goes_on``: the
    parked run asks the model once more after its tool."""
    release, holding = asyncio.Event(), asyncio.Event()
    registry = ToolRegistry([restart_tool(started), hold_tool(release, holding)])
    harness = await harness_factory(channel=waiting(), registry=registry, max_concurrent_runs=1)
    anthropic.enqueue(
        tool_use_reply("restart", {"target": "web"}),  # the parked run
        tool_use_reply("hold", {}),  # the run in the slot
        text_reply("held"),
        *([text_reply("done")] if goes_on else []),
    )
    parked = await harness.start(plan=one_step())
    await asked(harness)
    await harness.parked(parked.id)
    busy = await harness.start(plan=one_step())
    async with asyncio.timeout(10):
        await holding.wait()
    await harness.service.decide(harness.channel.asked[0].id, approve())

    async def in_line() -> bool:
        return harness.runner.working(parked.id) and harness.runner.slots.place(parked.id) > 0

    await eventually(in_line)
    assert (await harness.store.get_run(busy.id)).status is RunStatus.RUNNING
    return harness, parked, release


async def test_a_run_killed_after_the_host_read_it_never_starts_its_tool(
    harness_factory: Factory, anthropic: AnthropicStandIn, store: Store
) -> None:
    started: list[str] = []
    harness, parked, release = await parked_behind_a_busy_slot(harness_factory, anthropic,
                                                               started, goes_on=False)  # fmt: skip
    # Killed by another process whose signal has not come yet: the task's copy is stale.
    now = await store.get_run(parked.id)
    await store.save_run(now.model_copy(update={"status": RunStatus.KILLED, "error": "killed"}))
    release.set()
    ended = await harness.finished(parked.id)
    assert ended.status is RunStatus.KILLED and ended.version == now.version + 1  # untouched
    await eventually(lambda: _idle(harness, parked.id))
    assert started == []
    # As when its own read finds the run over: nothing said (the killer tells people).
    finished = [e for e in harness.channel.events if e.kind == "run_finished"]
    assert all(e.run.id != parked.id for e in finished)


async def test_a_run_saved_elsewhere_after_the_host_read_it_keeps_that_save(
    harness_factory: Factory, anthropic: AnthropicStandIn, store: Store
) -> None:
    started: list[str] = []
    harness, parked, release = await parked_behind_a_busy_slot(harness_factory, anthropic,
                                                               started, goes_on=True)  # fmt: skip
    # An earlier owner's last save lands after the host's read: its spend must not be lost.
    now = await store.get_run(parked.id)
    spent = now.spend.model_copy(update={"llm_calls": now.spend.llm_calls + 40})
    await store.save_run(now.model_copy(update={"spend": spent}))
    release.set()
    ended = await harness.finished(parked.id)
    assert ended.status is RunStatus.COMPLETED
    assert started == [parked.id]
    assert ended.spend.llm_calls == spent.llm_calls + 1  # its own last model call on top


async def test_a_lease_taken_elsewhere_after_the_host_read_the_run_stops_it(
    harness_factory: Factory, anthropic: AnthropicStandIn, store: Store
) -> None:
    started: list[str] = []
    harness, parked, release = await parked_behind_a_busy_slot(harness_factory, anthropic,
                                                               started, goes_on=False)  # fmt: skip
    claims = harness.runner.claims
    assert isinstance(claims, LocalClaims)
    hold = claims.holds.held[parked.id]
    # The lease lapses and another process takes the run, while this task waits in line.
    assert await store.release_lease(hold.lease)
    assert await store.take_lease(parked.id, holder="srv-other", ttl_seconds=60) is not None
    before = await store.get_run(parked.id)
    release.set()
    await eventually(lambda: _idle(harness, parked.id))
    assert started == []
    after = await store.get_run(parked.id)
    assert after.version == before.version and after.owner == before.owner  # wrote nothing
    approval = await store.get_approval(harness.channel.asked[0].id)
    assert approval.status is ApprovalStatus.APPROVED and approval.consumed_at is None


async def _idle(harness: Harness, run_id: str) -> bool:
    return not harness.runner.working(run_id)


async def test_a_signal_from_the_wire_carries_no_approval(store: Store) -> None:
    sent = {"kind": "approval_decided", "approval_id": "apr_1", "run_id": "run_a"}
    assert ApprovalDecided.model_validate(sent).settled is None
    with pytest.raises(ValidationError):  # a forged approval is refused, not believed
        ApprovalDecided.model_validate({**sent, "_settled": {"id": "apr_1"}})
    with pytest.raises(ValidationError):
        ApprovalDecided.model_validate({**sent, "settled": {"id": "apr_1"}})


async def test_the_approval_a_signal_carries_is_what_the_store_keeps_after_it(
    harness_factory: Factory, anthropic: AnthropicStandIn, store: Store
) -> None:
    """The notice shows the signal's approval: nothing done to it after its conclusion (a
    late decision, a cancel, an expiry) changes what it shows."""
    harness = await harness_factory(channel=waiting())
    anthropic.enqueue(tool_use_reply("restart", {"target": "web"}), text_reply("left alone"))
    run = await harness.start(plan=one_step())
    await asked(harness)
    await harness.parked(run.id)
    approval = harness.channel.asked[0]
    async with store.subscribe() as signals:
        outcome = await harness.service.decide(
            approval.id, Decision(kind=DecisionKind.REJECT, by="U0ADMIN", reason="not now")
        )
        assert isinstance(outcome, Concluded)
        async with asyncio.timeout(5):
            signal = await signals.get()
    assert isinstance(signal, ApprovalDecided) and signal.settled is not None
    late = await harness.service.decide(approval.id, approve())
    assert isinstance(late, AlreadyDecided)
    cancelled = events.ApprovalCancelled(approval_id=approval.id, reason="its run is over")
    for status in (ApprovalStatus.CANCELLED, ApprovalStatus.EXPIRED):
        closed = await close_undecided(store, signal.settled, status=status, by="airlock",
                                       at=signal.settled.requested_at, why=cancelled)  # fmt: skip
        assert closed is None
    kept = await store.get_approval(approval.id)
    shown = ("status", "decided_by", "decided_at", "decisions", "subject")
    assert kept.model_dump(include=set(shown)) == signal.settled.model_dump(include=set(shown))
    await harness.finished(run.id)
    settled = [e for e in harness.channel.events if isinstance(e, ApprovalSettled)]
    assert [e.approval.status for e in settled] == [ApprovalStatus.REJECTED]
