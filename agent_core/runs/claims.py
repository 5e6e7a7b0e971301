"""Which runs a process works on, and its hold on each against every other process.

A :class:`~agent_core.runs.host.RunHost` takes one claims strategy:

- :class:`LocalClaims`: runs submitted to this process (and, for a server, every run left
  unfinished) are worked on here, each under a lease in the store. One `airlock serve` on
  SQLite uses it, and so does a terminal's `airlock run` on either store.
- :class:`~agent_core.runs.leased.LeasedClaims`: a worker of a Redis deployment, which
  takes runs off the shared queue under the queue's leases and hands them over on stop.

Either way a run is held under a lease that expires unless renewed (every third of
``lease_seconds``). A second process finds the run held and leaves it alone; a holder that
dies stops renewing, its lease lapses, and another process takes the run up from its
checkpoint. The holder writes its name on the run when it takes it, so an old holder's
next save fails the store's version check, and checks its lease before each risky tool call
(:mod:`agent_core.runs.ownership`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from agent_core import telemetry
from agent_core.errors import NotFound, OwnershipLost
from agent_core.models import Approval, ApprovalDecided, Run, RunStatus
from agent_core.runs.control import ACTIVE
from agent_core.runs.orchestrator import Stop
from agent_core.runs.tasks import cancelled
from agent_core.store import Store
from agent_core.store.base import Lease
from agent_core.store.run_queue import RECONNECT_ERRORS

if TYPE_CHECKING:
    from agent_core.runs.host import RunHost

__all__ = [
    "TERMINAL",
    "Claims",
    "Hold",
    "Holds",
    "LeaseBook",
    "LocalClaims",
    "StoreLeases",
    "parked",
    "wait",
    "worker_name",
]

logger = logging.getLogger(__name__)

TERMINAL = "terminal-"
"""How the name of a terminal's lease holder begins: workers leave its runs to it."""


def worker_name(*, terminal: bool = False) -> str:
    """A name no other process has: host, process id and a random part (``terminal-`` first
    for a terminal's ``airlock run``)."""
    name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return TERMINAL + name if terminal else name


def parked(run: Run) -> bool:
    """Whether ``run`` waits for a person (it holds no lease then)."""
    return run.status is RunStatus.AWAITING_APPROVAL


async def wait(event: asyncio.Event, seconds: float) -> bool:
    """Whether ``event`` got set within ``seconds`` (a timer that a stop cuts short)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


class Claims(Protocol):
    """How a :class:`~agent_core.runs.host.RunHost` gets its runs and holds them.

    The host calls these at fixed points, each once per event; none calls back into the
    host's private parts. The host's public ``work``, ``cancel``, ``working``, ``schedule``
    and ``recover`` are what a strategy uses.
    """

    @property
    def name(self) -> str:
        """This process's name on the runs it holds."""
        ...

    async def open(self, host: RunHost) -> None:
        """Before the host listens for signals: get ready to hand it runs."""
        ...

    async def begin(self) -> None:
        """Once the host listens: take up what is this process's to do, keep leases alive."""
        ...

    async def submit(self, run_id: str) -> bool:
        """Have ``run_id`` worked on; False while another process holds it."""
        ...

    async def held_by(self, run_id: str) -> tuple[str, float] | None:
        """Who holds ``run_id`` and for how many more seconds; None if nobody does."""
        ...

    async def decided(self, signal: ApprovalDecided, *, working_here: bool) -> Run | None:
        """An approval of the signal's run was decided: resume the run unless
        ``working_here`` (it goes round again by itself). The run, as read for this, if this
        process tells people the approval was settled; None if it does not (or the run is
        gone). The one read of the run a decision costs the host."""
        ...

    async def reminds(self, approval: Approval) -> bool:
        """Whether this process sends the reminder of ``approval`` (one process of many)."""
        ...

    async def done(self, hold: Hold, run: Run | None) -> None:
        """The task working under ``hold`` ended (``run`` as it left it; None when cancelled
        or never started): let go of the run, hand it on if it is unfinished and that is
        this strategy's way, and resume it if a decision came while it was parking."""
        ...

    async def closing(self) -> None:
        """The host stops: take up nothing more."""
        ...

    async def closed(self) -> None:
        """Every run is let go: stop renewing."""
        ...


class LeaseBook(Protocol):
    """Where leases on runs are kept: the store, or a Redis deployment's run queue."""

    async def acquire(
        self, run_id: str, *, worker: str, entry: str, ttl_seconds: float
    ) -> Lease | None: ...

    async def renew(self, lease: Lease, *, ttl_seconds: float) -> bool: ...

    async def holds(self, lease: Lease) -> bool: ...

    async def held_for(self, run_id: str) -> tuple[str, float] | None: ...

    async def finish(self, lease: Lease, *, requeue: bool = False) -> bool: ...


@dataclass(frozen=True)
class StoreLeases:
    """Leases kept in the store: no queue to put a run back on."""

    store: Store

    async def acquire(
        self, run_id: str, *, worker: str, entry: str, ttl_seconds: float
    ) -> Lease | None:
        return await self.store.take_lease(run_id, holder=worker, ttl_seconds=ttl_seconds)

    async def renew(self, lease: Lease, *, ttl_seconds: float) -> bool:
        return await self.store.renew_lease(lease, ttl_seconds=ttl_seconds)

    async def holds(self, lease: Lease) -> bool:
        return await self.store.holds_lease(lease)

    async def held_for(self, run_id: str) -> tuple[str, float] | None:
        return await self.store.lease_holder(run_id)

    async def finish(self, lease: Lease, *, requeue: bool = False) -> bool:
        if requeue:
            raise ValueError("store leases have no queue to put a run back on")
        return await self.store.release_lease(lease)


@dataclass(kw_only=True, eq=False)
class Hold:
    """This process's lease on one run; the orchestrator's
    :class:`~agent_core.runs.ownership.Ownership` of it, checked before every risky call."""

    lease: Lease
    book: LeaseBook
    renewed: float
    """Loop time of the last renewal that reached the book."""
    lost: bool = False
    """Another process has the run now: write nothing more."""
    over: bool = False
    """Let go (or lost): no more renewals, and nothing more to let go of."""
    saves_release: bool = False
    """The book's leases are the store's: a run save can let go of this one."""
    released: bool = False
    """Let go by the run's save that parked or ended it (or that save under way)."""

    @property
    def owner(self) -> str:
        return self.lease.owner

    @property
    def run_id(self) -> str:
        return self.lease.run_id

    async def check(self) -> None:
        if not await self.still_ours():
            raise OwnershipLost(self.run_id, "its lease is another process's now")

    @contextlib.contextmanager
    def letting_go(self) -> Iterator[Lease | None]:
        if not self.saves_release or self.lost or self.over:
            yield None
            return
        # Marked before the save: a renewal that finds the lease gone meanwhile is no loss.
        self.released = True
        try:
            yield self.lease
        except BaseException:  # the save did not land, or may not have: let go as ever
            self.released = False
            raise

    async def still_ours(self) -> bool:
        """Whether the lease is still this process's (False from the first time it is not)."""
        if not self.lost and not await self.book.holds(self.lease):
            self.lost = True
        return not self.lost


@dataclass(kw_only=True)
class Holds:
    """The leases one process holds: taken, renewed together, lost, let go."""

    book: LeaseBook
    name: str
    lease_seconds: float
    on_lost: Callable[[str], None]
    """Called with a run's id when its lease turns out to be gone: stop its task."""
    saves_release: bool = False
    """The book keeps its leases in the store: a run's last save lets go of its lease."""
    held: dict[str, Hold] = field(default_factory=dict)
    freed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set each time a hold is let go (a slot came free)."""

    @classmethod
    def of(cls, host: RunHost, *, book: LeaseBook, name: str, lease_seconds: float) -> Holds:
        """The holds of ``host``'s runs: a run whose lease is lost is cancelled as such, and
        one that parks or ends lets go of its lease in that save (the leases are the store's:
        its own, or its run queue's)."""
        lost = functools.partial(host.cancel, stop=Stop.CLAIM_LOST)
        return cls(book=book, name=name, lease_seconds=lease_seconds, on_lost=lost,
                   saves_release=True)  # fmt: skip

    async def take(self, run_id: str, *, entry: str = "") -> Hold | None:
        """A hold on ``run_id`` (renewed from now on); None while another process has it."""
        lease = await self.book.acquire(
            run_id, worker=self.name, entry=entry, ttl_seconds=self.lease_seconds
        )
        if lease is None:
            return None
        hold = Hold(lease=lease, book=self.book, renewed=asyncio.get_running_loop().time(),
                    saves_release=self.saves_release)  # fmt: skip
        self.held[run_id] = hold
        return hold

    async def renewing(self, until: asyncio.Event) -> None:
        """Renew every hold each third of a lease, until ``until`` is set."""
        while not await wait(until, self.lease_seconds / 3):
            await self.renew()

    async def renew(self) -> None:
        """Renew every lease at once; a run whose lease is gone stops where it is."""
        await asyncio.gather(*(self._renew(hold) for hold in list(self.held.values())))

    async def _renew(self, hold: Hold) -> None:
        loop = asyncio.get_running_loop()
        try:
            held = await self.book.renew(hold.lease, ttl_seconds=self.lease_seconds)
        except Exception as error:  # the store unreachable or busy: try again next time
            logger.warning(
                "could not renew a lease",
                extra={"run_id": hold.run_id, "error": type(error).__name__},
            )
            # Unknown: it holds while it may. Past a lease, someone else may have it.
            held = loop.time() - hold.renewed < self.lease_seconds
        else:
            hold.renewed = loop.time()
        if held or hold.over or hold.released:  # let go meanwhile: nothing to stop
            return
        logger.warning("lease lost; the run continues in another process",
                       extra={"run_id": hold.run_id, "worker": self.name})  # fmt: skip
        hold.lost = True
        telemetry.worker_event("lost")
        self.forget(hold)
        self.on_lost(hold.run_id)

    def forget(self, hold: Hold) -> None:
        """Stop renewing ``hold`` (not a newer hold on the same run) and free its slot."""
        hold.over = True
        if self.held.get(hold.run_id) is hold:
            del self.held[hold.run_id]
            self.freed.set()

    async def let_go(self, hold: Hold, *, requeue: bool = False) -> None:
        """Release ``hold`` (with ``requeue``, put its run back on the queue)."""
        self.forget(hold)  # renewals stop before the lease goes
        if hold.lost or (hold.released and not requeue):  # gone with the run's last save
            return
        if requeue:
            telemetry.worker_event("handed_over")
        try:
            if not await self.book.finish(hold.lease, requeue=requeue):
                logger.warning("lease was lost before the run was let go",
                               extra={"run_id": hold.run_id})  # fmt: skip
        except RECONNECT_ERRORS:
            # The lease runs out (and a queue entry stays pending): another process takes it.
            logger.warning("could not release a run; it is taken up again after its lease",
                           extra={"run_id": hold.run_id})  # fmt: skip


@dataclass(kw_only=True)
class LocalClaims:
    """Runs submitted to this process work here, each under a lease in the store.

    A server (``everything``) also takes up, when it starts, every unfinished run no live
    process holds, resumes any run whose approval is decided (but a terminal's, which that
    terminal resumes), and every lease takes up again a run whose holder died. A terminal
    works only on the runs submitted to it. A run left unfinished at shutdown waits for the
    next process to start: there is no queue to hand it to.
    """

    store: Store
    name: str = field(default_factory=worker_name)
    lease_seconds: float = 30.0
    everything: bool = True
    """A server: every run in the store. False: a terminal, just the runs submitted to it."""
    own: set[str] = field(default_factory=set)
    """The runs submitted to a terminal."""
    _host: RunHost | None = None
    _holds: Holds | None = None
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _loops: list[asyncio.Task[None]] = field(default_factory=list)

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
        self._holds = Holds.of(host, book=StoreLeases(self.store), name=self.name,
                               lease_seconds=self.lease_seconds)  # fmt: skip

    async def begin(self) -> None:
        self._loops.append(asyncio.create_task(self.holds.renewing(self._released),
                                               name="airlock-leases"))  # fmt: skip
        if self.everything:
            await self.host.recover()
            self._loops.append(asyncio.create_task(self._taking_up(), name="airlock-take-up"))

    async def submit(self, run_id: str, *, known: Run | None = None) -> bool:
        """``known``: the run as just read, which the run task starts from instead of
        reading it again (see :meth:`RunHost.work`)."""
        if not self.everything:
            self.own.add(run_id)
        if self.host.working(run_id):
            return True
        hold = await self.holds.take(run_id)
        if hold is None:
            return False
        self.host.work(run_id, hold, known=known)
        return True

    async def held_by(self, run_id: str) -> tuple[str, float] | None:
        return await self.store.lease_holder(run_id)

    async def decided(self, signal: ApprovalDecided, *, working_here: bool) -> Run | None:
        run_id = signal.run_id
        if not self.everything and run_id not in self.own:
            return None
        try:
            run = await self.store.get_run(run_id)
        except NotFound:
            return None  # nothing to resume, nobody to tell
        if not working_here and not self._a_terminals(run):
            # The run task starts from this read (its claim's compare-and-set catches a
            # run changed since), and the host tells people from it too: one read, not three.
            await self.submit(run_id, known=run)
        return run

    async def reminds(self, approval: Approval) -> bool:
        return True  # each process reminds on its own channel

    async def done(self, hold: Hold, run: Run | None) -> None:
        if hold.over:
            return
        await self.holds.let_go(hold)
        if run is None or hold.lost or not parked(run) or self._closing.is_set():
            return
        # A decision that came after the host looked, and before the lease was let go,
        # found the run held (by this process): resume it now.
        if not await self.store.list_pending_approvals(run_id=run.id):
            await self.submit(run.id)

    async def closing(self) -> None:
        self._closing.set()
        await cancelled(task for task in self._loops if task.get_name() != "airlock-leases")

    async def closed(self) -> None:
        self._released.set()
        await cancelled(self._loops)

    def _a_terminals(self, run: Run) -> bool:
        """Whether a server should leave ``run`` to the terminal that worked on it last
        (if that terminal is gone, :meth:`_taking_up` finds the run)."""
        if not self.everything:
            return False
        return run.owner is not None and run.owner.startswith(TERMINAL)

    async def _taking_up(self) -> None:
        """Every lease: take up the unfinished runs no live process holds any more."""
        while not await wait(self._closing, self.lease_seconds):
            try:
                await self._take_up()
            except Exception:  # a store hiccup: look again next time
                logger.exception("could not look for runs to take up")

    async def _take_up(self) -> None:
        halt = await self.store.get_halt()
        halted = halt is not None and halt.halted
        # A run nobody holds yet, changed within a lease, is about to be taken by whoever
        # made or resumed it (a terminal between creating a run and taking it, say).
        fresh = self.host.clock.now() - timedelta(seconds=self.lease_seconds)
        for status in ACTIVE:
            for run in await self.store.list_runs(status=status, limit=100_000):
                if self._closing.is_set():
                    return
                if self.host.working(run.id) or (status is RunStatus.QUEUED and halted):
                    continue
                if parked(run) and await self.store.list_pending_approvals(run_id=run.id):
                    continue
                if run.updated_at > fresh and await self.store.lease_holder(run.id) is None:
                    continue
                if await self.submit(run.id):
                    logger.info("took up a run its holder left",
                                extra={"run_id": run.id, "worker": self.name})  # fmt: skip
