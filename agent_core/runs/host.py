"""The run host: where a process works on runs, whichever way it gets them.

One class for every process that works on runs (`airlock serve`, `airlock worker`,
`airlock run`). It owns the tasks of the runs working here, the slots they wait for, the
reminder and deadline timers of their approvals, the store signals that reach them, and the
shutdown. Which runs are this process's to work on, and how it holds them against other
processes, is its :class:`~agent_core.runs.claims.Claims` strategy's business: a lease in
the store taken when a run is submitted (one process on SQLite, and a terminal's
``airlock run``), or leases on runs read off a Redis deployment's shared queue.

The host holds a task only for a run that is working or waiting its turn for a slot (at most
``slots.limit`` at once; the rest wait in line, first come first served, and are told their
place). A run waiting for a person is parked in the store with no coroutine, no slot and no
lease; a decision, in whichever process it lands, has the claims resume it. A kill cancels
the run's task, a halt cancels them all, and a stop cancels them after a grace period, having
first written :attr:`Stop.SHUTDOWN <agent_core.runs.orchestrator.Stop>` on each task's record,
which leaves each run at its last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent_core import telemetry
from agent_core.approvals import ApprovalPolicy, close_undecided, close_with_run
from agent_core.audit import events
from agent_core.audit.trail import Audit
from agent_core.channel import (
    ApprovalEscalated,
    ApprovalReminder,
    ApprovalSettled,
    OperatorChannel,
    RunFinished,
    RunQueued,
)
from agent_core.clock import Clock, SystemClock
from agent_core.errors import NotFound, OwnershipLost, VersionConflict
from agent_core.models import (
    Approval,
    ApprovalDecided,
    ApprovalStatus,
    HaltChanged,
    Run,
    RunKilled,
    RunStatus,
    Signal,
    TimeoutPolicy,
)
from agent_core.runs.claims import Claims, Hold
from agent_core.runs.control import ACTIVE
from agent_core.runs.orchestrator import Orchestrator, Stop
from agent_core.runs.slots import RunQueue
from agent_core.runs.tasks import cancelled
from agent_core.store import Store

__all__ = ["RunHost", "RunTask"]

logger = logging.getLogger(__name__)

_RECHECK_SECONDS = 1.0


@dataclass(kw_only=True, eq=False)
class RunTask:
    """The host's record of the task working on a run here."""

    task: asyncio.Task[Run]
    stop: Stop | None = None
    """Why the task was cancelled though the run goes on, written before it is cancelled;
    None (a cancellation with no reason recorded) is a kill."""


@dataclass(kw_only=True)
class RunHost:
    """Works on runs in this process, as its claims strategy hands them over."""

    store: Store
    orchestrator: Orchestrator
    channel: OperatorChannel
    policy: ApprovalPolicy
    claims: Claims
    """Which runs this process works on, and its hold on each against other processes."""
    clock: Clock = field(default_factory=SystemClock)
    slots: RunQueue = field(default_factory=RunQueue)
    """Which runs hold a slot and which wait for one (no limit unless given one)."""
    run_tasks: dict[str, RunTask] = field(default_factory=dict)
    """Runs working, or waiting for a slot, in this process now: their tasks' records."""
    timers: dict[str, list[asyncio.TimerHandle]] = field(default_factory=dict)
    """Reminder and deadline timers, by approval id."""
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _background: set[asyncio.Task[Any]] = field(default_factory=set)
    _listening: asyncio.Event = field(default_factory=asyncio.Event)
    _wake: set[str] = field(default_factory=set)

    @property
    def tasks(self) -> dict[str, asyncio.Task[Run]]:
        """The tasks of the runs working, or waiting for a slot, in this process now."""
        return {run_id: record.task for run_id, record in self.run_tasks.items()}

    @property
    def audit(self) -> Audit:
        return Audit(store=self.store)

    @property
    def name(self) -> str:
        """This process's name on the runs it holds (``Run.owner``, the audit trail)."""
        return self.claims.name

    async def start(self) -> None:
        """Listen for signals, then have the claims take up what is this process's to do."""
        await self.claims.open(self)
        self._spawn(self._listen())
        await self._listening.wait()
        await self.claims.begin()

    async def stop(self, *, grace_seconds: float = 0.0) -> None:
        """Stop this process's work without ending any run: they resume elsewhere or later.

        Nothing new is taken up. With ``grace_seconds``, working runs first get that long to
        reach their next checkpoint (a model turn or a tool round just written), so the step
        in flight is not lost; whatever has not got there by then is cancelled where it is,
        and the claims let go of each run (a Redis worker hands it to another).
        """
        await self.claims.closing()
        self.orchestrator.draining.set()
        working = [task for task in self.tasks.values() if not task.done()]
        if working and grace_seconds > 0:
            await asyncio.wait(working, timeout=grace_seconds)
        for handles in self.timers.values():
            for handle in handles:
                handle.cancel()
        for record in self.run_tasks.values():
            record.stop = Stop.SHUTDOWN
        await cancelled([*self.tasks.values(), *self._background])
        await self.claims.closed()

    async def submit(self, run_id: str) -> bool:
        """Have ``run_id`` worked on: here, or by whichever worker is free first (a Redis
        deployment). False while another process holds it (see :meth:`held_by`).

        While shutting down, a run taken here starts and stops at once, untouched: the next
        process to start takes it up.
        """
        return await self.claims.submit(run_id)

    async def held_by(self, run_id: str) -> tuple[str, float] | None:
        """Which process holds ``run_id`` and for how many more seconds; None if none does."""
        return await self.claims.held_by(run_id)

    def working(self, run_id: str) -> bool:
        """Whether ``run_id`` is working, or waiting for a slot, here."""
        record = self.run_tasks.get(run_id)
        return record is not None and not record.task.done()

    def work(self, run_id: str, hold: Hold, *, known: Run | None = None) -> None:
        """Start ``run_id`` under ``hold`` (for the claims, which took it). ``known``: the run
        as the claims just read it, which its first pass starts from (the claim's
        compare-and-set catches a run changed since; see :meth:`Orchestrator.execute`)."""
        self.slots.join(run_id)
        work = self._run(run_id, hold, known)
        task = asyncio.create_task(work, name=f"airlock-run-{run_id}")
        task.add_done_callback(functools.partial(self._ended, run_id, hold))
        self.run_tasks[run_id] = RunTask(task=task)

    def cancel(self, run_id: str, stop: Stop | None = None) -> None:
        """Cancel the task of ``run_id``: for ``stop``, or, without one, as killed."""
        record = self.run_tasks.get(run_id)
        if record is not None:
            record.stop = stop
            record.task.cancel()

    def _stop_of(self, run_id: str) -> Stop | None:
        """Why the current task, working on ``run_id``, was cancelled; None: a kill."""
        record = self.run_tasks.get(run_id)
        mine = record is not None and record.task is asyncio.current_task()
        return record.stop if record is not None and mine else None

    def _ended(self, run_id: str, hold: Hold, task: asyncio.Task[Run]) -> None:
        """Bookkeeping for a task that ended, also one cancelled before it ever ran (a kill
        right after it was submitted), whose own ``finally`` never ran: its hold is let go
        here, as its own code would have."""
        self.slots.leave(run_id)
        record = self.run_tasks.get(run_id)
        if record is not None and record.task is task:
            del self.run_tasks[run_id]
        if not hold.over:
            self._spawn(self.claims.done(hold, None))

    async def wait_for(self, run_id: str, statuses: AbstractSet[RunStatus]) -> Run:
        """Until ``run_id`` reaches one of ``statuses``; bound it with asyncio.timeout.

        Woken by this process's runs and by signals, and every second besides: another
        process may finish the run without a signal to say so.
        """
        while True:
            async with self.changed:
                run = await self.store.get_run(run_id)
                if run.status in statuses:
                    return run
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_RECHECK_SECONDS):
                        await self.changed.wait()

    async def _run(self, run_id: str, hold: Hold, known: Run | None = None) -> Run:
        run: Run | None = None
        try:
            run = await self._attempt(run_id, hold, known)
            return run
        finally:
            self.slots.leave(run_id)
            record = self.run_tasks.get(run_id)
            if record is not None and record.task is asyncio.current_task():
                del self.run_tasks[run_id]
            # Let go (and see to a decision that came while parking) even when cancelled.
            await asyncio.shield(self.claims.done(hold, run))
            await self._changed()

    async def _attempt(self, run_id: str, hold: Hold, known: Run | None) -> Run:
        try:
            await self._take_turn(run_id)
            if self.orchestrator.draining.is_set():  # shutting down: the next process starts it
                return await self.store.get_run(run_id)
            return await self._drive(run_id, hold, known)
        except OwnershipLost as lost:  # taken over elsewhere: theirs to finish, not ours to fail
            why = {"run_id": run_id, "reason": str(lost)}
            logger.warning("run taken over; stopping here", extra=why)
            return await self.store.get_run(run_id)
        except Exception as error:  # a bug must end the run visibly, not leave it "running"
            logger.exception("run crashed", extra={"run_id": run_id})
            if not await hold.still_ours():
                return await self.store.get_run(run_id)  # not ours to fail any more
            return await self._fail(run_id, f"internal error: {type(error).__name__}: {error}")

    async def _take_turn(self, run_id: str) -> None:
        """Wait for a slot, telling people the run's place in line each time it changes."""
        shown = 0
        try:
            while (place := self.slots.place(run_id)) > 0:
                if place == shown:
                    await self.slots.moved(run_id)
                    continue
                shown = place
                await self._tell_place(run_id, place)
        except asyncio.CancelledError:
            if self._stop_of(run_id) is None:  # killed while in line
                await asyncio.shield(self._ended_in_line(run_id))
            raise
        if shown:
            await self._tell_place(run_id, 0)

    async def _tell_place(self, run_id: str, place: int) -> None:
        run = await self.store.get_run(run_id)
        await self.channel.notify(RunQueued(run=run, position=place))

    async def _ended_in_line(self, run_id: str) -> None:
        run = await self.store.get_run(run_id)
        if run.status.is_final:
            result = run.error or run.status.value
            await self.channel.notify(RunFinished(run=run, status=run.status, result=result))

    async def _drive(self, run_id: str, hold: Hold, known: Run | None) -> Run:
        while True:
            self._wake.discard(run_id)
            stop_of = functools.partial(self._stop_of, run_id)
            run = await self.orchestrator.execute(run_id, ownership=hold, stop_of=stop_of,
                                                  known=known)  # fmt: skip
            known = None  # a second pass reads the run afresh
            if run.status is not RunStatus.AWAITING_APPROVAL:
                return run
            for approval in await self.store.list_pending_approvals(run_id=run_id):
                self.schedule(approval)
            # A decision that came while this task was parking the run resumes it now; if
            # the park let go of the lease, the claims take the run again to resume it.
            if run_id not in self._wake or hold.released:
                return run

    async def _fail(self, run_id: str, reason: str) -> Run:
        run = await self.store.get_run(run_id)
        while not run.status.is_final:
            try:
                run = await self.store.save_run(
                    run.model_copy(update={"status": RunStatus.FAILED, "error": reason})
                )
                telemetry.run_finished(RunStatus.FAILED)
            except VersionConflict:
                run = await self.store.get_run(run_id)
        await close_with_run(self.store, run_id, by="airlock", at=self.clock.now())
        await self.channel.notify(RunFinished(run=run, status=run.status, result=reason))
        return run

    async def _changed(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def recover(self) -> None:
        """Submit unfinished runs; re-arm deadlines; cancel approvals of runs that are over.

        What a process starting over the store does first (the claims decide when): a run
        another live process holds stays with it.
        """
        halt = await self.store.get_halt()
        # Runs that were working come first: with a limit, they take the first slots.
        for status in sorted(ACTIVE, key=lambda status: status is RunStatus.QUEUED):
            for run in await self.store.list_runs(status=status, limit=100_000):
                await self._recover(run, halted=halt is not None and halt.halted)
        for approval in await self.store.list_pending_approvals():
            await self.cancel_if_orphaned(approval)

    async def _recover(self, run: Run, *, halted: bool) -> None:
        if run.status is RunStatus.AWAITING_APPROVAL:
            pending = await self.store.list_pending_approvals(run_id=run.id)
            for approval in pending:
                self.schedule(approval)
            if pending:
                return
        if run.status is RunStatus.QUEUED and halted:
            return
        await self.submit(run.id)

    async def cancel_if_orphaned(self, approval: Approval) -> None:
        """Close ``approval`` as cancelled if its run is over or gone."""
        try:
            run: Run | None = await self.store.get_run(approval.run_id)
        except NotFound:
            run = None
        if run is not None and not run.status.is_final:
            return
        # Signalled like any other close (start() listens before it recovers), so the
        # request's every copy is updated wherever it was posted.
        reason = "its run is over" if run is not None else "its run is gone"
        await close_undecided(
            self.store, approval, status=ApprovalStatus.CANCELLED, by="airlock",
            at=self.clock.now(), trail=run is not None,
            why=events.ApprovalCancelled(approval_id=approval.id, reason=reason),
        )  # fmt: skip

    # Signals

    async def _listen(self) -> None:
        async with self.store.subscribe() as signals:
            self._listening.set()
            async for signal in signals:
                try:
                    await self._on(signal)
                except Exception:  # one bad signal must not stop the listener
                    logger.exception("signal handling failed", extra={"signal": signal.kind})
                await self._changed()  # a run may have ended elsewhere (a kill): wake waiters

    async def _on(self, signal: Signal) -> None:
        if isinstance(signal, ApprovalDecided):
            await self._decided(signal)
        elif isinstance(signal, RunKilled):
            self.cancel(signal.run_id)
        elif isinstance(signal, HaltChanged) and signal.halted:
            for run_id in list(self.tasks):
                self.cancel(run_id)

    async def _decided(self, signal: ApprovalDecided) -> None:
        for handle in self.timers.pop(signal.approval_id, []):
            handle.cancel()
        working_here = self.working(signal.run_id)
        if working_here:
            self._wake.add(signal.run_id)  # still busy (parking, say): it goes round again
        # Resume first (the claims find out whether it is theirs), tell people after, from
        # the run the claims read: it is the run as it was after the decision, which is what
        # the notice shows (a resume's own moves come with notices of their own).
        run = await self.claims.decided(signal, working_here=working_here)
        if run is None:
            return
        # Decided in this process: the approval as concluded, which is what a read would find
        # (see ApprovalDecided.settled); from another process it is read.
        approval = signal.settled
        if approval is None:
            try:
                approval = await self.store.get_approval(signal.approval_id)
            except NotFound:
                return  # a signal about something this store no longer has
        await self.channel.notify(ApprovalSettled(run=run, approval=approval))

    # Deadlines

    def schedule(self, approval: Approval) -> None:
        """Arm the reminder (half time) and deadline of a pending approval."""
        if approval.deadline is None or approval.id in self.timers:
            return
        now = self.clock.now()
        half = approval.requested_at + (approval.deadline - approval.requested_at) / 2
        handles = []
        if half > now and approval.hop == 0:
            handles.append(self._at(half, self._remind, approval.id))
        handles.append(self._at(approval.deadline, self._deadline, approval.id))
        self.timers[approval.id] = handles

    def _at(
        self, when: datetime, work: Callable[[str], Coroutine[Any, Any, None]], approval_id: str
    ) -> asyncio.TimerHandle:
        delay = max(0.0, (when - self.clock.now()).total_seconds())
        loop = asyncio.get_running_loop()
        # The coroutine is made when the timer fires, so a cancelled timer leaves none behind.
        return loop.call_later(delay, lambda: self._spawn(work(approval_id)))

    async def _remind(self, approval_id: str) -> None:
        approval = await self.store.get_approval(approval_id)
        if approval.status is ApprovalStatus.PENDING and await self.claims.reminds(approval):
            run = await self.store.get_run(approval.run_id)
            await self.channel.notify(ApprovalReminder(run=run, approval=approval))
            await self.channel.request_decision(approval)

    async def _deadline(self, approval_id: str) -> None:
        self.timers.pop(approval_id, None)
        approval = await self.store.get_approval(approval_id)
        if approval.status is not ApprovalStatus.PENDING:
            return
        policy = self.policy.timeout(approval.risk)
        if policy is TimeoutPolicy.KEEP:
            await self.audit.record(approval.run_id, events.ApprovalKept(approval_id=approval.id),
                                    actor="airlock")  # fmt: skip
            return
        if policy is TimeoutPolicy.ESCALATE and approval.hop < len(self.policy.escalation):
            await self._escalate(approval)
            return
        expired = events.ApprovalExpired(approval_id=approval.id, policy=policy)
        await close_undecided(self.store, approval, status=ApprovalStatus.EXPIRED, by="airlock",
                              at=self.clock.now(), why=expired)  # fmt: skip

    async def _escalate(self, approval: Approval) -> None:
        who, seconds = self.policy.escalation[approval.hop]
        deadline = self.clock.now() + timedelta(seconds=seconds)
        moved = await self.store.escalate_approval(
            approval.id, hop=approval.hop + 1, approvers=[who], deadline=deadline
        )
        if moved is None:
            return
        escalated = events.ApprovalEscalated(approval_id=approval.id, to=who, hop=moved.hop)
        await self.audit.record(approval.run_id, escalated, actor="airlock")
        run = await self.store.get_run(approval.run_id)
        await self.channel.notify(ApprovalEscalated(run=run, approval=moved))
        await self.channel.request_decision(moved)
        self.schedule(moved)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task
