"""A recording OperatorChannel for tests: it keeps every event and answers from a script."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent_core.approvals import DecisionService, Refused
from agent_core.channel import RunEvent
from agent_core.models import Approval, Decision, DecisionKind, DecisionOutcome, Run

__all__ = ["RecordingChannel", "approve_all", "reject_all"]

Decider = Callable[[Approval], Decision | None]


@dataclass(kw_only=True)
class RecordingChannel:
    """Records events and requests; with a ``decider`` and a ``service`` it answers requests.

    A decider returning None leaves that request for the test to decide.
    """

    decider: Decider | None = None
    """Answers approval requests (through ``service``, as a person's click would)."""
    service: DecisionService | None = None
    """Where the decider's decisions go; attached by whoever builds the runner."""
    members: dict[str, set[str]] = field(default_factory=dict)
    """User groups and their members."""
    events: list[RunEvent] = field(default_factory=list)
    asked: list[Approval] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    outcomes: list[DecisionOutcome | Refused] = field(default_factory=list)
    answers: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def notify(self, event: RunEvent) -> None:
        async with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    async def request_decision(self, approval: Approval) -> None:
        async with self.changed:
            self.asked.append(approval)
            self.changed.notify_all()
        decision = self.decider(approval) if self.decider is not None else None
        if decision is not None:
            # As a click would: later, from outside the run's own call stack.
            task = asyncio.create_task(self._decide(approval.id, decision))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _decide(self, approval_id: str, decision: Decision) -> None:
        assert self.service is not None, "attach a DecisionService to answer requests"
        outcome = await self.service.decide(approval_id, decision)
        async with self.changed:
            self.outcomes.append(outcome)
            self.changed.notify_all()

    async def ask(self, run: Run, question: str) -> str:
        async with self.changed:
            self.questions.append(question)
            self.changed.notify_all()
        return await self.answers.get()

    async def members_of(self, group: str) -> set[str]:
        return self.members.get(group, set())

    async def wait_for(self, predicate: Callable[[RecordingChannel], bool]) -> None:
        """Until ``predicate(self)`` holds; bound it with ``asyncio.timeout``."""
        async with self.changed:
            await self.changed.wait_for(lambda: predicate(self))

    def kinds(self) -> list[str]:
        """The kinds of the recorded events, in order."""
        return [event.kind for event in self.events]


def approve_all(by: str = "local:tests") -> Decider:
    """A decider approving everything (``local:`` identities decide with admin authority)."""
    return lambda approval: Decision(kind=DecisionKind.APPROVE, by=by)


def reject_all(by: str = "local:tests", reason: str = "not now") -> Decider:
    """A decider rejecting everything with ``reason``."""
    return lambda approval: Decision(kind=DecisionKind.REJECT, by=by, reason=reason)
