"""A step of a run as one durable write: its journal records, audit events and run save.

Inside ``async with store.step(run_id) as step:`` the audit events and tool-call journal
records that this task writes for ``run_id`` are held, not written, and land with the next
:meth:`save_run` of that run, in the same transaction (on SQLite: one commit, one fsync), or
when the step ends. What must be durable before something happens outside (a tool starts, a
person is asked) is committed first: :meth:`Step.commit`, or :meth:`Step.outside` around it.

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
from typing import Any, Protocol

from agent_core.models import AuditEvent, Run
from agent_core.toolcalls import ToolCallRecord

__all__ = ["Held", "Step", "Steps", "held", "holding"]


@dataclass(kw_only=True)
class Held:
    """What a step holds for one run, oldest first."""

    run_id: str
    task: asyncio.Task[Any] | None = None
    """The task that holds: tasks it starts write at once, as every other does."""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    """Journal records (a later record of the same call replaces an earlier one)."""
    events: list[AuditEvent] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tool_calls or self.events)

    def take(self) -> Held:
        """What is held, which this no longer holds."""
        taken = Held(
            run_id=self.run_id, task=self.task, tool_calls=self.tool_calls, events=self.events
        )
        self.tool_calls, self.events = [], []
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

    async def commit(self) -> None:
        """Make what is held durable now (before something happens outside the store)."""
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
        if step.held:  # ended by an exception or a cancellation too: these things happened
            await asyncio.shield(step.commit())


class Steps(Protocol):
    """Writes of one step of a run committed at once (see :mod:`agent_core.store.steps`)."""

    def step(self, run_id: str) -> AbstractAsyncContextManager[Step]:
        """Hold this task's audit events and journal records of ``run_id`` until the run's
        next save, or the end of the block; they and the save land in one transaction."""
        ...
