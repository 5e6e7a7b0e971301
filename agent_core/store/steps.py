"""A step of a run as one durable write: its journal records, audit events and run save.

Inside ``async with store.step(run_id) as step:`` the audit events and tool-call journal
records that this task writes for ``run_id`` are held, not written, and land with the next
:meth:`save_run` of that run, in the same transaction (on SQLite: one commit, one fsync), or
when the step ends. What must be durable before something happens outside (a tool starts, a
person is asked) is committed first: :meth:`Step.commit`, or :meth:`Step.outside` around it.

A step may also hold the use of an approval (:meth:`Step.use`): it is the condition of the
next commit, not a fact of it. That commit first marks the approval used, and if it can no
longer be used (used already by another process, not approved, approved for other arguments)
nothing of the commit lands and :class:`~agent_core.errors.ApprovalNotUsable` is raised: so a
decided tool call's approval is used up in the same transaction that records the call started
(on Redis, with the journal record in one ``MULTI``; its audit events follow).

An event can also be held for the save itself (:meth:`Step.record_with_save`, a worker
claiming the run): it lands after the save, in its transaction, only if the save lands. So
can the letting go of the run's lease (:meth:`Step.release_with_save`, the save that parks or
ends the run): it is let go in the save's transaction, only if the save lands and the lease
is still the one held (not lapsed, not taken again), as :meth:`release_lease` would.

A step may hold a session fact as well (:meth:`Step.set_fact`: that a request's approvers
were asked, written with the park that follows), which lands as the events do.

Held writes are facts that happened before the save they land with: if that save loses its
compare-and-set (another process saved or ended the run), they are committed alone and the
conflict is raised. A step that ends, even by an exception or a cancellation, commits what it
holds; only a process that dies loses it, with the save it was waiting for, so a crash leaves
the store as it was after the step's last commit. Only the task that opened the step holds:
tasks it starts, and every other task of the process (a decision made meanwhile, say), write
at once, as ever, so nothing is held by a step that has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from agent_core.models import AuditEvent, Run
from agent_core.toolcalls import ToolCallRecord

if TYPE_CHECKING:
    from agent_core.store.base import Lease

__all__ = ["ApprovalUse", "Fact", "Held", "Step", "Steps", "held", "holding"]


@dataclass(kw_only=True, frozen=True)
class ApprovalUse:
    """An approval to be used up by the commit that starts the call it approved."""

    approval_id: str
    digest: str
    """The call's arguments as approved (see :func:`~agent_core.models.subject_digest`)."""
    at: datetime


@dataclass(kw_only=True, frozen=True)
class Fact:
    """A session fact to set with a step's next commit (as ``set_fact`` would)."""

    scope: str
    key: str
    value: str
    ttl_seconds: float


@dataclass(kw_only=True)
class Held:
    """What a step holds for one run, oldest first."""

    run_id: str
    task: asyncio.Task[Any] | None = None
    """The task that holds: tasks it starts write at once, as every other does."""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    """Journal records (a later record of the same call replaces an earlier one)."""
    events: list[AuditEvent] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    """Session facts, set after the journal records and events."""
    use: ApprovalUse | None = None
    """The approval the next commit uses up first, or lands nothing."""
    with_save: list[AuditEvent] = field(default_factory=list)
    """Events of the next run save itself: they land after it, only if it lands."""
    release: Lease | None = None
    """The run's lease, let go by the next run save, only if it lands."""

    def __bool__(self) -> bool:
        return bool(
            self.tool_calls or self.events or self.facts or self.use or self.with_save
            or self.release
        )  # fmt: skip

    @property
    def needs_save(self) -> bool:
        """Whether what is held is the run save's own (it lands with that save or never)."""
        return bool(self.with_save or self.release)

    def take(self) -> Held:
        """What is held, which this no longer holds."""
        taken = Held(
            run_id=self.run_id,
            task=self.task,
            tool_calls=self.tool_calls,
            events=self.events,
            facts=self.facts,
            use=self.use,
            with_save=self.with_save,
            release=self.release,
        )
        self.tool_calls, self.events, self.facts = [], [], []
        self.use, self.with_save = None, []
        self.release = None
        return taken


Commit = Callable[[Held, Run | None, bytes | None], Awaitable[Run | None]]
"""A store's commit of held writes and, if given, a run save with its checkpoint, at once."""

_HOLDING: ContextVar[Held | None] = ContextVar("airlock_store_step", default=None)


def held(run_id: str) -> Held | None:
    """What the current task's step holds, if it holds writes of ``run_id``."""
    current = _HOLDING.get()
    if current is None or current.run_id != run_id or current.task is not asyncio.current_task():
        return None
    return current


@dataclass(kw_only=True)
class Step:
    """An open step: its writes are held until the next save of its run, or its end."""

    held: Held
    _commit: Commit

    def use(self, use: ApprovalUse) -> None:
        """Use up an approval in the next commit, which lands only if it can be used."""
        if self.held.use is not None and self.held.use != use:
            raise ValueError(f"this step uses {self.held.use.approval_id} already")
        self.held.use = use

    def record_with_save(self, event: AuditEvent) -> None:
        """Record ``event`` (of this step's run) with the run's next save, and only if that
        save lands: for what the save itself does (a worker claiming the run)."""
        if event.run_id != self.held.run_id:
            raise ValueError(f"this step is of {self.held.run_id}, not {event.run_id}")
        self.held.with_save.append(event)

    def set_fact(self, fact: Fact) -> None:
        """Set ``fact`` with the next commit: something that happened, as an event is."""
        self.held.facts.append(fact)

    def release_with_save(self, lease: Lease) -> None:
        """Let go of ``lease`` (on this step's run) in the run's next save, and only if that
        save lands: for the save after which the run needs no process (parked, or over)."""
        if lease.run_id != self.held.run_id:
            raise ValueError(f"this step is of {self.held.run_id}, not {lease.run_id}")
        self.held.release = lease

    async def commit(self) -> None:
        """Make what is held durable now (before something happens outside the store)."""
        if self.held.needs_save:
            raise RuntimeError("a run save's own writes are held: the step must save the run")
        if self.held:
            await self._commit(self.held.take(), None, None)

    @asynccontextmanager
    async def outside(self) -> AsyncIterator[None]:
        """Commit what is held, then write at once until the block ends: for work that tells
        people or other processes what it writes (the risk gate asking for a decision)."""
        await self.commit()
        token = _HOLDING.set(None)
        try:
            yield
        finally:
            _HOLDING.reset(token)


@asynccontextmanager
async def holding(run_id: str, commit: Commit) -> AsyncIterator[Step]:
    """A step of ``run_id`` whose writes ``commit`` makes durable; joins the current task's
    step of the same run if there is one."""
    current = held(run_id)
    if current is not None:
        yield Step(held=current, _commit=commit)
        return
    step = Step(held=Held(run_id=run_id, task=asyncio.current_task()), _commit=commit)
    token = _HOLDING.set(step.held)
    try:
        yield step
    finally:
        _HOLDING.reset(token)
        # Its save never came: what it would have done did not (the lease is let go as ever).
        step.held.with_save.clear()
        step.held.release = None
        if step.held:  # ended by an exception or a cancellation too: these things happened
            await asyncio.shield(step.commit())


class Steps(Protocol):
    """Writes of one step of a run committed at once (see :mod:`agent_core.store.steps`)."""

    def step(self, run_id: str) -> AbstractAsyncContextManager[Step]:
        """Hold this task's audit events and journal records of ``run_id`` until the run's
        next save, or the end of the block; they and the save land in one transaction."""
        ...
