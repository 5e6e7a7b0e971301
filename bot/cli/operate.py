"""Operator commands: list, approve and reject approvals; kill runs; halt and resume.

They act on whichever store the settings name, through the same decision path and kill
switch as Slack, so a decision made here wakes the run wherever it waits.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from agent_core import (
    Airlock,
    Decision,
    DecisionKind,
    DecisionOutcome,
    HaltState,
    Refused,
    Run,
    Settings,
    Store,
    ToolCallSubject,
    local_identity,
    redact,
)
from bot.slack.render import visible

__all__ = ["Operator", "approvals_table", "operator"]


@dataclass(kw_only=True)
class Operator:
    """The airlock on the configured store, acting as ``identity``: the same decision path
    and kill switch as Slack."""

    identity: str
    airlock: Airlock

    @property
    def store(self) -> Store:
        return self.airlock.store

    async def decide(
        self, approval_id: str, kind: DecisionKind, reason: str | None = None
    ) -> DecisionOutcome | Refused:
        """Approve or reject ``approval_id`` as this operator."""
        return await self.airlock.decide(
            approval_id, Decision(kind=kind, by=self.identity, reason=reason)
        )

    async def kill(self, run_id: str | None, reason: str | None) -> list[Run] | Run | Refused:
        """Kill one run, or every run when ``run_id`` is None."""
        if run_id is None:
            return await self.airlock.kill_all(by=self.identity, reason=reason)
        return await self.airlock.kill(run_id, by=self.identity, reason=reason)

    async def retry(self, run_id: str) -> Run | Refused:
        """Queue a failed run again as its next attempt."""
        return await self.airlock.retry(run_id, by=self.identity)

    async def halt(self, reason: str | None) -> list[Run] | Refused:
        """Kill every run and refuse new ones until :meth:`resume`."""
        return await self.airlock.halt(by=self.identity, reason=reason)

    async def resume(self) -> HaltState | Refused:
        """Accept new runs again."""
        return await self.airlock.resume(by=self.identity)


@asynccontextmanager
async def operator(settings: Settings, identity: str | None) -> AsyncIterator[Operator]:
    """An :class:`Operator` on the configured store, closed afterwards."""
    who = identity or settings.operator_id or local_identity()
    async with Airlock.from_settings(settings) as airlock:
        yield Operator(identity=who, airlock=airlock)


async def approvals_table(store: Store) -> Table:
    """The pending approvals, oldest first."""
    table = Table(title="Pending approvals", title_justify="left")
    for column in ("approval", "run", "risk", "asks for", "requested by", "deadline"):
        table.add_column(column)
    for approval in await store.list_pending_approvals():
        subject = approval.subject
        what = (
            # Stored exactly (it is what runs); masked here.
            redact(f"{subject.tool} {json.dumps(subject.arguments, ensure_ascii=False)}")
            if isinstance(subject, ToolCallSubject)
            else f"plan of {len(subject.plan.subtasks)} steps"
        )
        deadline = approval.deadline.isoformat(timespec="seconds") if approval.deadline else "-"
        # Text cells: what a model wrote is shown as written, never as rich markup.
        table.add_row(*(Text(visible(cell)) for cell in (
            approval.id, approval.run_id, approval.risk.value, what, approval.requester or "-",
            deadline)))  # fmt: skip
    return table
