"""A recording OperatorChannel for tests: it keeps every event and answers from a script."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from agent_core.channel import RunEvent
from agent_core.models import Approval, Decision, DecisionKind, Run

__all__ = ["RecordingChannel", "approve_all", "reject_all"]

Decider = Callable[[Approval], Decision]


@dataclass(kw_only=True)
class RecordingChannel:
    """Records events; decisions and answers come from queues a test fills.

    ``decide`` with no argument leaves requests waiting until :meth:`push_decision` is
    called (or the waiting task is cancelled); ``decider`` answers each request at once.
    """

    decider: Decider | None = None
    """Answers every approval request at once, if set."""
    events: list[RunEvent] = field(default_factory=list)
    """Everything notified, in order."""
    asked: list[Approval] = field(default_factory=list)
    """Every approval request, in order."""
    questions: list[str] = field(default_factory=list)
    """Every question asked."""
    decisions: asyncio.Queue[Decision] = field(default_factory=asyncio.Queue)
    answers: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def notify(self, event: RunEvent) -> None:
        async with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    async def request_decision(self, approval: Approval) -> Decision:
        async with self.changed:
            self.asked.append(approval)
            self.changed.notify_all()
        if self.decider is not None:
            return self.decider(approval)
        return await self.decisions.get()

    async def ask(self, run: Run, question: str) -> str:
        async with self.changed:
            self.questions.append(question)
            self.changed.notify_all()
        return await self.answers.get()

    def push_decision(self, decision: Decision) -> None:
        """Answer the next (or a waiting) approval request."""
        self.decisions.put_nowait(decision)

    async def wait_for(self, predicate: Callable[[RecordingChannel], bool]) -> None:
        """Until ``predicate(self)`` holds; bound it with ``asyncio.timeout``."""
        async with self.changed:
            await self.changed.wait_for(lambda: predicate(self))

    def kinds(self) -> list[str]:
        """The kinds of the recorded events, in order."""
        return [event.kind for event in self.events]


def approve_all(by: str = "U0APPROVER", *, admin: bool = True) -> Decider:
    """A decider approving everything (as an admin, so one decision settles a quorum)."""
    return lambda approval: Decision(kind=DecisionKind.APPROVE, by=by, as_admin=admin)


def reject_all(by: str = "U0APPROVER", reason: str = "not now") -> Decider:
    """A decider rejecting everything with ``reason``."""
    return lambda approval: Decision(kind=DecisionKind.REJECT, by=by, reason=reason)
