"""The claims of a Redis deployment's worker: runs off the shared queue, a lease on each.

Front ends (``airlock serve --no-worker``) only queue runs; any number of workers
(``airlock worker``, or ``airlock serve`` without the flag) execute them. A worker reads
entries through the consumer group as long as it has a free slot, takes the run's lease,
and works on it in its :class:`~agent_core.runs.host.RunHost` like any process: decisions,
kills and the halt reach it as store signals, from any process.

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
- **Terminals.** A terminal's ``airlock run`` holds its run under a lease on the same keys
  (:class:`~agent_core.runs.claims.LocalClaims`); workers leave the runs a terminal worked
  on last to it, and ``airlock run --resume`` takes one up if that terminal went away.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from agent_core import telemetry
from agent_core.errors import NotFound
from agent_core.models import Approval, ApprovalDecided, Run, RunStatus
from agent_core.runs.claims import TERMINAL, Hold, Holds, parked, wait, worker_name
from agent_core.runs.tasks import cancelled
from agent_core.store import Store
from agent_core.store.run_queue import BACKOFF, RECONNECT_ERRORS, Entry, RedisRunQueue

if TYPE_CHECKING:
    from agent_core.runs.host import RunHost

__all__ = ["LEASES_TASK", "LeasedClaims"]

logger = logging.getLogger(__name__)

LEASES_TASK = "airlock-leases"
"""Name of a worker's task that renews its leases."""
_CLAIM_TTL_SECONDS = 86_400.0
"""How long the key that says "this decision was handed on" is kept."""
_LIVE = (RunStatus.QUEUED, RunStatus.PLANNING, RunStatus.RUNNING, RunStatus.AWAITING_APPROVAL)


def _a_terminals(run: Run) -> bool:
    """Whether a terminal (`airlock run`) worked on ``run`` last: it resumes it itself."""
    return run.owner is not None and run.owner.startswith(TERMINAL)


@dataclass(kw_only=True)
class LeasedClaims:
    """Takes queued runs while holding their leases; see the module docstring."""

    queue: RedisRunQueue
    """The shared queue and leases."""
    store: Store
    name: str = field(default_factory=worker_name)
    slots: int = 8
    """Most runs this worker works on at once."""
    lease_seconds: float = 30.0
    _host: RunHost | None = None
    _holds: Holds | None = None
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when stopping: no more reading, claiming or sweeping."""
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once every run is let go: no more lease renewals."""
    _loops: tuple[asyncio.Task[None], ...] = ()
    _holding: int = 0
    """How many runs it held when it began to stop (for the log)."""

    @property
    def host(self) -> RunHost:
        assert self._host is not None, "open() first"
        return self._host

    @property
    def holds(self) -> Holds:
        assert self._holds is not None, "open() first"
        return self._holds

    async def open(self, host: RunHost) -> None:
        self._host = host
        self._holds = Holds.of(host, book=self.queue, name=self.name,
                               lease_seconds=self.lease_seconds)  # fmt: skip
        await self.queue.ensure_group()

    async def begin(self) -> None:
        """Sweep once, then read the queue and keep leases alive in the background."""
        await self._sweep()
        self._loops = (
            asyncio.create_task(self._read(), name=f"airlock-worker-{self.name}"),
            asyncio.create_task(self._maintain(), name="airlock-claims"),
            asyncio.create_task(self.holds.renewing(self._released), name=LEASES_TASK),
        )
        logger.info("worker started", extra={"worker": self.name, "slots": self.slots})

    async def submit(self, run_id: str) -> bool:
        """Queue ``run_id`` for whichever worker is free first."""
        await self.queue.enqueue(run_id)
        return True

    async def held_by(self, run_id: str) -> tuple[str, float] | None:
        return await self.queue.held_for(run_id)

    async def decided(self, signal: ApprovalDecided, *, working_here: bool) -> Run | None:
        # Every worker hears the decision; one hands it on, and tells people.
        key = f"approval-settled:{signal.approval_id}"
        if not await self.store.claim_idempotency_key(key, ttl_seconds=_CLAIM_TTL_SECONDS):
            return None
        try:
            run = await self.store.get_run(signal.run_id)
        except NotFound:
            return None
        if not working_here and not run.status.is_final and not _a_terminals(run):
            await self.queue.enqueue(run.id)
        return run

    async def reminds(self, approval: Approval) -> bool:
        key = f"approval-reminded:{approval.id}:{approval.hop}"
        return await self.store.claim_idempotency_key(key, ttl_seconds=_CLAIM_TTL_SECONDS)

    async def done(self, hold: Hold, run: Run | None) -> None:
        if hold.over:
            return
        if hold.lost:
            self.holds.forget(hold)
            return
        if run is None:  # cancelled: shutting down hands it over; a kill wrote its status
            run = await self.store.get_run(hold.run_id)
        await self.holds.let_go(hold, requeue=not run.status.is_final and not parked(run))
        if parked(run) and not hold.lost:
            await self._decided_meanwhile(run)

    async def closing(self) -> None:
        """Stop reading, claiming and sweeping (leases are still renewed)."""
        # Each loop also checks the flag: a cancellation swallowed by a timeout racing it
        # (asyncio.timeout in Python 3.11 can) must not keep the process from exiting.
        self._closing.set()
        await cancelled(t for t in self._loops if t.get_name() != LEASES_TASK)
        self._holding = len(self.holds.held)

    async def closed(self) -> None:
        self._released.set()
        await cancelled(t for t in self._loops if t.get_name() == LEASES_TASK)
        # Of the runs it held, those that did not end in the grace period were handed over.
        logger.info("worker stopped", extra={"worker": self.name, "held": self._holding})

    # Reading the queue

    async def _read(self) -> None:
        failures = 0
        while not self._closing.is_set():
            free = self.slots - len(self.holds.held)
            if free <= 0:
                self.holds.freed.clear()
                await self.holds.freed.wait()
                continue
            try:
                entries = await self.queue.read(self.name, count=free, block_seconds=1.0)
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
        if entry.run_id in self.holds.held:  # ours already: a second request for the same run
            if not claimed:
                await self.queue.drop(entry.id)
            return
        try:
            run = await self.store.get_run(entry.run_id)
        except NotFound:
            await self.queue.drop(entry.id)
            return
        if not await self._needs_work(run):
            await self.queue.drop(entry.id)
            return
        hold = await self.holds.take(run.id, entry=entry.id)
        if hold is None:
            # Another worker has it. A new entry asks for nothing more; a claimed one is
            # that worker's own, and its next renewal takes it back.
            if not claimed:
                await self.queue.drop(entry.id)
            return
        telemetry.worker_event("claimed" if claimed else "read")
        self.host.work(run.id, hold)

    async def _needs_work(self, run: Run) -> bool:
        if run.status.is_final:
            return False
        if parked(run):
            pending = await self.store.list_pending_approvals(run_id=run.id)
            for approval in pending:
                self.host.schedule(approval)
            return not pending
        return True

    async def _decided_meanwhile(self, run: Run) -> None:
        """Queue a parked run again if its approval was decided while it was parking."""
        if not await self.store.list_pending_approvals(run_id=run.id):
            await self.queue.enqueue(run.id)

    # Leases and sweeps

    async def _maintain(self) -> None:
        loop = asyncio.get_running_loop()
        swept = loop.time()
        while not await wait(self._closing, self.lease_seconds / 3):
            try:
                await self._reclaim()
            except RECONNECT_ERRORS:
                logger.warning("could not claim idle runs: store unreachable")
            if loop.time() - swept >= self.lease_seconds:
                swept = loop.time()
                await self._sweep()

    async def _reclaim(self) -> None:
        free = self.slots - len(self.holds.held)
        if free <= 0:
            return
        entries = await self.queue.reclaim(self.name, idle_seconds=self.lease_seconds, count=free)
        for entry in entries:
            logger.info("claimed a run from a worker that stopped answering",
                        extra={"run_id": entry.run_id, "worker": self.name})  # fmt: skip
            await self._take(entry, claimed=True)

    async def _sweep(self) -> None:
        """Arm approval timers; queue again live runs that no worker holds or will read."""
        try:
            for approval in await self.store.list_pending_approvals():
                await self.host.cancel_if_orphaned(approval)
                self.host.schedule(approval)
            stale = self.host.clock.now() - timedelta(seconds=3 * self.lease_seconds)
            for status in _LIVE:
                for run in await self.store.list_runs(status=status, limit=100_000):
                    if run.id not in self.holds.held and run.updated_at < stale:
                        await self._requeue_if_stranded(run)
            await self.queue.forget_idle_workers(idle_seconds=max(3600.0, 10 * self.lease_seconds))
            telemetry.queue_depth(*await self.queue.depth())
        except RECONNECT_ERRORS:
            logger.warning("sweep skipped: store unreachable")

    async def _requeue_if_stranded(self, run: Run) -> None:
        if _a_terminals(run):
            return  # `airlock run --resume` picks it up if that terminal went away
        if not await self._needs_work(run) or await self.queue.holder(run.id) is not None:
            return
        # One request per version of the run, across all workers.
        key = f"run-requeued:{run.id}:{run.version}"
        if await self.store.claim_idempotency_key(key, ttl_seconds=30 * self.lease_seconds):
            logger.info("queueing a run nobody held", extra={"run_id": run.id})
            await self.queue.enqueue(run.id)
