"""A worker of a Redis deployment: takes runs off the shared queue, holds a lease on each.

Front ends (``airlock serve --no-worker``) only queue runs; any number of workers
(``airlock worker``, or ``airlock serve`` without the flag) execute them. A worker reads
entries through the consumer group as long as it has a free slot, takes the run's lease,
and works on it with the same runner as one process does: decisions, kills and the halt
reach it as store signals, from any process.

What makes it safe when a process dies:

- **Leases.** A worker renews each of its leases every third of ``lease_seconds``. One that
  dies stops renewing; after ``lease_seconds`` its entries look idle and another worker
  claims them (XAUTOCLAIM), takes the lease and resumes the run from its checkpoint. The
  executor's crash rule decides what happens to a tool call that may have run half-way.
- **Fencing.** The new owner first writes its name on the run, so the old one's next save
  fails the version check; and the old one checks its lease before every tool call. A
  worker that finds it lost a run stops without writing anything.
- **Hand-over.** On SIGTERM a worker stops reading, gives working runs the grace period to
  reach a checkpoint, then puts each back on the queue and releases its lease: another
  worker resumes it at once.
- **Parked runs hold nothing.** A run waiting for a person has no lease and no entry. A
  decision, in whichever process it lands, queues the run again (one worker does, by an
  idempotency key on the approval). A worker that parks a run releases it first and then
  looks again for a decision that came meanwhile, so none falls between the two.
- **Sweeps.** Every ``lease_seconds`` each worker arms the reminder and deadline timers of
  pending approvals (one worker sends a reminder, by an idempotency key) and queues again
  a live run that has sat without a lease for a while, such as a decision whose signal was
  lost while Redis restarted, or a run whose front end died between creating and queueing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from agent_core import telemetry
from agent_core.channel import ApprovalSettled
from agent_core.errors import NotFound, OwnershipLost
from agent_core.models import ApprovalDecided, ApprovalStatus, Run, RunStatus
from agent_core.runs.orchestrator import LEASE_LOST, SHUTDOWN
from agent_core.runs.ownership import Ownership
from agent_core.runs.runner import Runner, cancelled
from agent_core.runs.slots import RunQueue
from agent_core.store.run_queue import BACKOFF, RECONNECT_ERRORS, Entry, Lease, RedisRunQueue

__all__ = ["LEASES_TASK", "TERMINAL", "Worker", "worker_name"]

logger = logging.getLogger(__name__)

TERMINAL = "terminal-"
"""How the name of a terminal's lease holder begins: workers leave its runs to it."""
LEASES_TASK = "airlock-leases"
"""Name of a worker's task that renews its leases, claims idle entries and sweeps."""
_CLAIM_TTL_SECONDS = 86_400.0
"""How long the key that says "this decision was handed on" is kept."""
_LIVE = (RunStatus.QUEUED, RunStatus.PLANNING, RunStatus.RUNNING, RunStatus.AWAITING_APPROVAL)


def _a_terminals(run: Run) -> bool:
    """Whether a terminal (`airlock run`) worked on ``run`` last: it resumes it itself."""
    return run.owner is not None and run.owner.startswith(TERMINAL)


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Whether ``event`` got set within ``seconds`` (a timer that a stop cuts short)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


def worker_name(*, terminal: bool = False) -> str:
    """A name no other worker has: host, process id and a random part (``terminal-`` first
    for a terminal's ``airlock run``)."""
    name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return TERMINAL + name if terminal else name


@dataclass(kw_only=True)
class _Hold:
    lease: Lease
    renewed: float
    """Loop time of the last renewal that reached Redis."""
    lost: bool = False


@dataclass(kw_only=True)
class _Fence:
    """The orchestrator's view of one hold: checked before every tool call."""

    worker: Worker
    hold: _Hold

    @property
    def owner(self) -> str:
        return self.hold.lease.owner

    async def check(self) -> None:
        if self.hold.lost or not await self.worker.runs.holds(self.hold.lease):
            self.hold.lost = True
            raise OwnershipLost(self.hold.lease.run_id, "its lease is another worker's now")


@dataclass(kw_only=True)
class Worker(Runner):
    """Executes queued runs while holding their leases; see the module docstring."""

    runs: RedisRunQueue
    """The shared queue and leases."""
    name: str = field(default_factory=worker_name)
    slots: int = 8
    """Most runs this worker works on at once."""
    lease_seconds: float = 30.0
    reads: bool = True
    """Take runs from the queue. False: work only on runs handed to :meth:`take` (a terminal's
    ``airlock run``), under leases all the same, so no worker takes them up meanwhile."""
    holds: dict[str, _Hold] = field(default_factory=dict)
    """Runs this worker holds a lease on, by id."""
    queue: RunQueue = field(default_factory=RunQueue)  # slots are counted here, not in line
    _freed: asyncio.Event = field(default_factory=asyncio.Event)
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when stopping: no more reading, claiming or sweeping."""
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once every run is let go: no more lease renewals."""
    _loops: tuple[asyncio.Task[None], ...] = ()

    async def start(self) -> None:
        """Listen for signals, then read the queue and keep leases alive in the background."""
        await self.runs.ensure_group()
        self._spawn(self._listen())
        await self._listening.wait()
        renewing = asyncio.create_task(self._renewing(), name=LEASES_TASK)
        if not self.reads:
            self._loops = (renewing,)
            return
        await self._sweep()
        self._loops = (
            asyncio.create_task(self._read(), name=f"airlock-worker-{self.name}"),
            asyncio.create_task(self._maintain(), name="airlock-claims"),
            renewing,
        )
        logger.info("worker started", extra={"worker": self.name, "slots": self.slots})

    async def stop(self, *, grace_seconds: float = 0.0) -> None:
        """Stop reading, let working runs reach a checkpoint, then hand them over."""
        # Each loop also checks these flags: a cancellation swallowed by a timeout racing it
        # (asyncio.timeout in Python 3.11 can) must not keep the process from exiting.
        self._closing.set()
        renewing = next((t for t in self._loops if t.get_name() == LEASES_TASK), None)
        await cancelled(t for t in self._loops if t is not renewing)
        holding = len(self.holds)
        await super().stop(grace_seconds=grace_seconds)
        self._released.set()
        await cancelled([renewing] if renewing else [])
        # Of the runs it held, those that did not end in the grace period were handed over.
        logger.info("worker stopped", extra={"worker": self.name, "held": holding})

    async def enqueue(self, run_id: str) -> None:
        """Queue ``run_id`` for whichever worker is free first."""
        await self.runs.enqueue(run_id)

    async def take(self, run_id: str) -> bool:
        """Work on ``run_id`` here, under a lease of its own (no queue entry); False while a
        worker holds it."""
        if run_id in self.holds:
            return True
        lease = await self.runs.acquire(
            run_id, worker=self.name, entry="", ttl_seconds=self.lease_seconds
        )
        if lease is None:
            return False
        self._work_under(lease)
        return True

    # Reading the queue

    async def _read(self) -> None:
        failures = 0
        while not self._closing.is_set():
            free = self.slots - len(self.holds)
            if free <= 0:
                self._freed.clear()
                await self._freed.wait()
                continue
            try:
                entries = await self.runs.read(self.name, count=free, block_seconds=1.0)
                failures = 0
            except RECONNECT_ERRORS:
                failures += 1
                logger.warning("run queue unreachable; retrying", extra={"attempt": failures})
                await asyncio.sleep(BACKOFF.compute(failures))
                continue
            for entry in entries:
                if self._closing.is_set():
                    return  # left pending: claimed by another worker after a lease
                await self._take(entry, claimed=False)

    async def _take(self, entry: Entry, *, claimed: bool) -> None:
        """Work on the entry's run if it needs it and nobody else holds it."""
        try:
            await self._try_take(entry, claimed=claimed)
        except Exception:  # the entry stays pending: it is claimed again after a lease
            logger.exception("could not take a queued run", extra={"run_id": entry.run_id})

    async def _try_take(self, entry: Entry, *, claimed: bool) -> None:
        if entry.run_id in self.holds:  # ours already: a second request for the same run
            if not claimed:
                await self.runs.drop(entry.id)
            return
        try:
            run = await self.store.get_run(entry.run_id)
        except NotFound:
            await self.runs.drop(entry.id)
            return
        if not await self._needs_work(run):
            await self.runs.drop(entry.id)
            return
        lease = await self.runs.acquire(
            run.id, worker=self.name, entry=entry.id, ttl_seconds=self.lease_seconds
        )
        if lease is None:
            # Another worker has it. A new entry asks for nothing more; a claimed one is
            # that worker's own, and its next renewal takes it back.
            if not claimed:
                await self.runs.drop(entry.id)
            return
        telemetry.worker_event("claimed" if claimed else "read")
        self._work_under(lease)

    def _work_under(self, lease: Lease) -> None:
        """Hold ``lease`` (renewed from now on) and start its run."""
        renewed = asyncio.get_running_loop().time()
        self.holds[lease.run_id] = _Hold(lease=lease, renewed=renewed)
        self.submit(lease.run_id)

    async def _needs_work(self, run: Run) -> bool:
        if run.status.is_final:
            return False
        if run.status is RunStatus.AWAITING_APPROVAL:
            pending = await self.store.list_pending_approvals(run_id=run.id)
            for approval in pending:
                self.schedule(approval)
            return not pending
        return True

    # Working on a run

    def _ownership(self, run_id: str) -> Ownership | None:
        hold = self.holds.get(run_id)
        return None if hold is None else _Fence(worker=self, hold=hold)

    async def _run(self, run_id: str) -> Run:
        hold = self.holds.get(run_id)
        if hold is None:  # submitted without a lease (a decision signal): queue it instead
            self.tasks.pop(run_id, None)
            self.queue.leave(run_id)
            await self.runs.enqueue(run_id)
            return await self.store.get_run(run_id)
        try:
            run = await super()._run(run_id)
        except asyncio.CancelledError as cancelled:
            if LEASE_LOST not in cancelled.args:
                # Shutting down: hand it over; killed: the kill wrote its final status.
                requeue = SHUTDOWN in cancelled.args
                await asyncio.shield(self._let_go(hold, requeue=requeue))
            self._forget(hold)
            raise
        try:
            await self._let_go(hold, requeue=not run.status.is_final and not self._parked(run))
            if self._parked(run) and not hold.lost:
                await self._decided_meanwhile(run)
        finally:
            self._forget(hold)
        return run

    def _ended(self, run_id: str, task: asyncio.Task[Run]) -> None:
        super()._ended(run_id, task)
        hold = self.holds.get(run_id)
        current = self.tasks.get(run_id)
        if hold is not None and (current is None or current.done()):
            # Cancelled before it ran (a kill or halt just after it was taken): its lease and
            # entry are let go here, as its own code would have.
            self._forget(hold)
            self._spawn(self._let_go_after(hold))

    async def _let_go_after(self, hold: _Hold) -> None:
        run = await self.store.get_run(hold.lease.run_id)
        await self._let_go(hold, requeue=not run.status.is_final and not self._parked(run))

    @staticmethod
    def _parked(run: Run) -> bool:
        return run.status is RunStatus.AWAITING_APPROVAL

    async def _let_go(self, hold: _Hold, *, requeue: bool) -> None:
        self._forget(hold)  # renewals stop before the lease goes
        if hold.lost:
            return
        requeue = requeue and self.reads  # a terminal's run waits for `airlock run --resume`
        if requeue:
            telemetry.worker_event("handed_over")
        try:
            if not await self.runs.finish(hold.lease, requeue=requeue):
                logger.warning("lease was lost before the run was let go",
                               extra={"run_id": hold.lease.run_id})  # fmt: skip
        except RECONNECT_ERRORS:
            # The entry stays pending and the lease runs out: another worker claims it.
            logger.warning("could not release a run; it is claimed again after its lease",
                           extra={"run_id": hold.lease.run_id})  # fmt: skip

    async def _decided_meanwhile(self, run: Run) -> None:
        """Queue a parked run again if its approval was decided while it was parking."""
        if not await self.store.list_pending_approvals(run_id=run.id):
            if self.reads:
                await self.runs.enqueue(run.id)
            else:
                await self.take(run.id)

    def _forget(self, hold: _Hold) -> None:
        """Stop renewing ``hold`` (not a newer hold on the same run) and free its slot."""
        run_id = hold.lease.run_id
        if self.holds.get(run_id) is hold:
            del self.holds[run_id]
            self._freed.set()

    async def _fail(self, run_id: str, reason: str) -> Run:
        hold = self.holds.get(run_id)
        if hold is not None and not await self.runs.holds(hold.lease):
            hold.lost = True  # not ours to fail any more
            return await self.store.get_run(run_id)
        return await super()._fail(run_id, reason)

    # Signals

    async def _decided(self, signal: ApprovalDecided) -> None:
        for handle in self.timers.pop(signal.approval_id, []):
            handle.cancel()
        task = self.tasks.get(signal.run_id)
        working_here = task is not None and not task.done()
        if working_here:
            self._wake.add(signal.run_id)  # still parking it: it goes round again
        if not self.reads:  # a terminal: its own runs resume here, like one process
            if not working_here:
                await self.take(signal.run_id)
            await super()._decided(signal)
            return
        # Every worker hears the decision; one hands it on.
        key = f"approval-settled:{signal.approval_id}"
        if not await self.store.claim_idempotency_key(key, ttl_seconds=_CLAIM_TTL_SECONDS):
            return
        try:
            approval = await self.store.get_approval(signal.approval_id)
            run = await self.store.get_run(signal.run_id)
        except NotFound:
            return
        if not working_here and not run.status.is_final and not _a_terminals(run):
            await self.runs.enqueue(run.id)
        await self.channel.notify(ApprovalSettled(run=run, approval=approval))

    async def _remind(self, approval_id: str) -> None:
        approval = await self.store.get_approval(approval_id)
        key = f"approval-reminded:{approval_id}:{approval.hop}"
        if approval.status is ApprovalStatus.PENDING and await self.store.claim_idempotency_key(
            key, ttl_seconds=_CLAIM_TTL_SECONDS
        ):
            await super()._remind(approval_id)

    # Leases and sweeps

    async def _renewing(self) -> None:
        while not await _wait(self._released, self.lease_seconds / 3):
            await self._renew()

    async def _maintain(self) -> None:
        loop = asyncio.get_running_loop()
        swept = loop.time()
        while not await _wait(self._closing, self.lease_seconds / 3):
            try:
                await self._reclaim()
            except RECONNECT_ERRORS:
                logger.warning("could not claim idle runs: store unreachable")
            if loop.time() - swept >= self.lease_seconds:
                swept = loop.time()
                await self._sweep()

    async def _renew(self) -> None:
        """Renew every lease at once; a run whose lease is gone stops where it is."""
        holds = list(self.holds.values())
        await asyncio.gather(*(self._renew_one(hold) for hold in holds))

    async def _renew_one(self, hold: _Hold) -> None:
        loop = asyncio.get_running_loop()
        try:
            held = await self.runs.renew(hold.lease, ttl_seconds=self.lease_seconds)
        except RECONNECT_ERRORS:
            # Unknown: it holds while it may. Past a lease, someone else may have it.
            held = loop.time() - hold.renewed < self.lease_seconds
        else:
            hold.renewed = loop.time()
        run_id = hold.lease.run_id
        if held or self.holds.get(run_id) is not hold:  # let go meanwhile: nothing to stop
            return
        logger.warning("lease lost; the run continues on another worker",
                       extra={"run_id": run_id, "worker": self.name})  # fmt: skip
        hold.lost = True
        telemetry.worker_event("lost")
        task = self.tasks.get(run_id)
        if task is not None:
            task.cancel(LEASE_LOST)

    async def _reclaim(self) -> None:
        free = self.slots - len(self.holds)
        if free <= 0:
            return
        entries = await self.runs.reclaim(self.name, idle_seconds=self.lease_seconds, count=free)
        for entry in entries:
            logger.info("claimed a run from a worker that stopped answering",
                        extra={"run_id": entry.run_id, "worker": self.name})  # fmt: skip
            await self._take(entry, claimed=True)

    async def _sweep(self) -> None:
        """Arm approval timers; queue again live runs that no worker holds or will read."""
        try:
            for approval in await self.store.list_pending_approvals():
                await self._cancel_if_orphaned(approval)
                self.schedule(approval)
            stale = self.clock.now() - timedelta(seconds=3 * self.lease_seconds)
            for status in _LIVE:
                for run in await self.store.list_runs(status=status, limit=100_000):
                    if run.id not in self.holds and run.updated_at < stale:
                        await self._requeue_if_stranded(run)
            await self.runs.forget_idle_workers(idle_seconds=max(3600.0, 10 * self.lease_seconds))
            telemetry.queue_depth(*await self.runs.depth())
        except RECONNECT_ERRORS:
            logger.warning("sweep skipped: store unreachable")

    async def _requeue_if_stranded(self, run: Run) -> None:
        if _a_terminals(run):
            return  # `airlock run --resume` picks it up if that terminal went away
        if not await self._needs_work(run) or await self.runs.holder(run.id) is not None:
            return
        # One request per version of the run, across all workers.
        key = f"run-requeued:{run.id}:{run.version}"
        if await self.store.claim_idempotency_key(key, ttl_seconds=30 * self.lease_seconds):
            logger.info("queueing a run nobody held", extra={"run_id": run.id})
            await self.runs.enqueue(run.id)
