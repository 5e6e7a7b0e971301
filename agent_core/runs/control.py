"""Kill switch and halt: stop one run, every run, or everything until resumed.

A kill is written to the store first (the run's final status, its pending approvals
cancelled) and then signalled, so it holds whether or not a process is running the run: the
process that is stops it within the signal's latency, and a parked run has nothing to stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent_core import telemetry
from agent_core.approvals import Authority, Refused, close_with_run
from agent_core.audit import events
from agent_core.audit.trail import GLOBAL, Audit
from agent_core.clock import Clock, SystemClock
from agent_core.errors import NotFound, VersionConflict
from agent_core.models import (
    HaltChanged,
    HaltState,
    Run,
    RunKilled,
    RunStatus,
)
from agent_core.store import Store

__all__ = ["ACTIVE", "RETRYABLE", "RunControl"]

ACTIVE = (
    RunStatus.QUEUED,
    RunStatus.PLANNING,
    RunStatus.AWAITING_APPROVAL,
    RunStatus.RUNNING,
)
"""Statuses of runs that are not over."""

RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.BUDGET_EXCEEDED})
"""Statuses a run may be retried from (a rejected, killed or completed run stays over)."""


@dataclass(kw_only=True)
class RunControl:
    """Kills runs and sets or lifts the global halt, with authorisation and an audit trail."""

    store: Store
    authority: Authority
    audit: Audit
    clock: Clock = field(default_factory=SystemClock)

    async def kill(self, run_id: str, *, by: str, reason: str | None = None) -> Run | Refused:
        """End ``run_id`` as killed (an admin, or the person who asked for it)."""
        try:
            run = await self.store.get_run(run_id)
        except NotFound:
            return Refused(reason=f"there is no run {run_id}")
        if not (await self.authority.is_admin(by) or by == run.requester):
            await self.audit.record(run.id, events.KillRefused(), actor=by)
            return Refused(reason="only an admin or the person who asked for the run may kill it")
        return await self._kill(run, by=by, reason=reason)

    async def retry(self, run_id: str, *, by: str) -> Run | Refused:
        """Queue a failed, timed-out or budget-stopped run again as its next attempt.

        Completed steps keep their results and a failed step its conversation, so the
        tool calls already made are not made again; budgets count from the retry. The
        caller submits the run to a run host.
        """
        try:
            run = await self.store.get_run(run_id)
        except NotFound:
            return Refused(reason=f"there is no run {run_id}")
        if not (await self.authority.is_admin(by) or by == run.requester):
            await self.audit.record(run.id, events.RetryRefused(), actor=by)
            return Refused(reason="only an admin or the person who asked for the run may retry it")
        if run.status not in RETRYABLE:
            return Refused(reason=f"it is {run.status.value}; only failed, timed-out or"
                                  " budget-stopped runs can be retried")  # fmt: skip
        kept = {k: r for k, r in run.results.items() if r.status == "completed"}
        retried = run.model_copy(update={
            "status": RunStatus.QUEUED, "attempt": run.attempt + 1, "error": None,
            "results": kept, "spent_before": run.spend.model_copy(),
        })  # fmt: skip
        try:
            run = await self.store.save_run(retried)
        except VersionConflict:
            return Refused(reason="the run changed meanwhile; look at it again")
        await self.audit.record(run.id, events.RunRetried(attempt=run.attempt), actor=by)
        return run

    async def kill_all(self, *, by: str, reason: str | None = None) -> list[Run] | Refused:
        """Kill every run that is not over (admins only)."""
        if not await self.authority.is_admin(by):
            return Refused(reason="only an admin may kill every run")
        await self.audit.record(GLOBAL, events.KillAll(reason=reason), actor=by)
        return [await self._kill(run, by=by, reason=reason) for run in await self._active()]

    async def halt(self, *, by: str, reason: str | None = None) -> list[Run] | Refused:
        """Kill every run and refuse new ones until :meth:`resume` (admins only)."""
        if not await self.authority.is_admin(by):
            return Refused(reason="only an admin may halt airlock")
        await self.store.set_halt(HaltState(halted=True, by=by, reason=reason))
        await self.store.publish(HaltChanged(halted=True, by=by))
        await self.audit.record(GLOBAL, events.Halt(reason=reason), actor=by)
        return [
            await self._kill(run, by=by, reason=reason or "halted") for run in await self._active()
        ]

    async def resume(self, *, by: str) -> HaltState | Refused:
        """Accept new runs again (admins only)."""
        if not await self.authority.is_admin(by):
            return Refused(reason="only an admin may resume airlock")
        state = HaltState(halted=False, by=by)
        await self.store.set_halt(state)
        await self.store.publish(HaltChanged(halted=False, by=by))
        await self.audit.record(GLOBAL, events.Resume(), actor=by)
        return state

    async def _active(self) -> list[Run]:
        runs: list[Run] = []
        for status in ACTIVE:
            runs += await self.store.list_runs(status=status, limit=100_000)
        return runs

    async def _kill(self, run: Run, *, by: str, reason: str | None) -> Run:
        why = reason or f"killed by {by}"
        while not run.status.is_final:
            try:
                run = await self.store.save_run(
                    run.model_copy(update={"status": RunStatus.KILLED, "error": why})
                )
                telemetry.run_killed()
            except VersionConflict:
                run = await self.store.get_run(run.id)
        await close_with_run(self.store, run.id, by=by, at=self.clock.now(),
                             reason="its run was killed")  # fmt: skip
        await self.store.publish(RunKilled(run_id=run.id, by=by, reason=why))
        await self.audit.record(run.id, events.RunKilled(reason=why), actor=by)
        return run
