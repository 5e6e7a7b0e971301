"""The embedded Store: one SQLite file, durable, shareable by processes on one machine.

Every operation is one transaction run on a dedicated thread, so the event
loop never blocks on disk and operations of one process never interleave.
Writes use ``BEGIN IMMEDIATE`` so two processes deciding the same approval
serialise on SQLite's write lock; WAL lets readers go on meanwhile, and
``synchronous=FULL`` keeps a committed decision through a power cut, not
only through a crash. Signals from other processes arrive by polling a table.

This module maps each Store operation to one transaction. The connection and
its thread are in ``_sqlite_conn``, the tables and how runs, checkpoints and
approvals map to rows in ``_sqlite_rows``, the signals table (written on
publish, polled for other processes' signals) in ``_sqlite_signals``, the
audit trails in ``_sqlite_audit``, the tool-call journal in ``_sqlite_journal`` and the
message locations (and the file's migrations) in ``_sqlite_messages``.
"""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from pathlib import Path

from agent_core.approvals.rule import apply_decision
from agent_core.audit.chain import UNKEYED, AuditKey, HeadCache
from agent_core.clock import Clock, SystemClock
from agent_core.errors import NotFound, VersionConflict
from agent_core.models import (
    AlreadyDecided,
    Approval,
    ApprovalStatus,
    AuditEvent,
    Concluded,
    Decision,
    DecisionOutcome,
    HaltState,
    Run,
    RunStatus,
    Signal,
)
from agent_core.store._clean import CleanValues
from agent_core.store._sqlite_audit import SqliteAudit
from agent_core.store._sqlite_conn import ThreadedConnection
from agent_core.store._sqlite_journal import SqliteJournal, put_tool_call
from agent_core.store._sqlite_memories import SqliteMemories
from agent_core.store._sqlite_messages import SqliteMessages, migrate
from agent_core.store._sqlite_rows import (
    insert_approval,
    insert_run,
    load_approval,
    load_run,
    put_approval,
    put_checkpoint,
    put_run,
    runs_where,
)
from agent_core.store._sqlite_signals import SignalPoller, insert_signal
from agent_core.store.base import (
    Lease,
    SignalHub,
    Subscription,
    checked_save,
    closed,
    consumed,
    dump,
    escalated,
    masked_run,
    masked_save,
)
from agent_core.store.steps import Fact, Held, Step, held, holding

__all__ = ["SqliteStore"]


class SqliteStore(SqliteMemories, SqliteAudit, SqliteJournal, SqliteMessages):
    """A :class:`~agent_core.store.base.Store` in one SQLite file.

    ``audit_key`` seals the audit trail (:mod:`agent_core.audit.chain`); without one,
    trails are sealed unkeyed.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Clock | None = None,
        poll_interval: float = 0.1,
        busy_timeout: float = 10.0,
        audit_key: AuditKey = UNKEYED,
    ) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._audit_key = audit_key
        self._audit_heads = HeadCache()
        self._clean = CleanValues()
        self._db = ThreadedConnection(self.path, busy_timeout=busy_timeout)
        self._hub = SignalHub()
        self._poller = SignalPoller(self._db, self._hub, poll_interval=poll_interval)

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        clock: Clock | None = None,
        poll_interval: float = 0.1,
        audit_key: AuditKey = UNKEYED,
    ) -> SqliteStore:
        """Open (creating if needed) the store at ``path``."""
        store = cls(path, clock=clock, poll_interval=poll_interval, audit_key=audit_key)
        await store._db.open()
        now = store._now().timestamp()
        await store._db.write(lambda conn: migrate(conn, now=now))
        return store

    def _now(self) -> datetime:
        return self._clock.now()

    async def ping(self) -> None:
        await self._db.read(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await self._poller.close()
        await self._db.close()

    # Runs

    async def create_run(self, run: Run) -> Run:
        stored = masked_run(run, clean=self._clean)
        return await self._db.write(lambda conn: insert_run(conn, stored))

    async def get_run(self, run_id: str) -> Run:
        return await self._db.read(lambda conn: load_run(conn, run_id))

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        requester: str | None = None,
        newest_first: bool = False,
        limit: int = 100,
    ) -> list[Run]:
        where, args = runs_where(status=status, requester=requester)
        order = "DESC" if newest_first else "ASC"
        query = f"SELECT body FROM runs {where} ORDER BY created_at {order}, id {order} LIMIT ?"

        def select(conn: sqlite3.Connection) -> list[Run]:
            rows = conn.execute(query, (*args, limit))
            return [Run.model_validate_json(row[0]) for row in rows]

        return await self._db.read(select)

    async def save_run(self, run: Run, *, checkpoint: bytes | None = None) -> Run:
        step = held(run.id)
        if step:
            saved = await self._commit_step(step.take(), run, checkpoint)
            assert saved is not None
            return saved
        run, checkpoint = masked_save(run, checkpoint, clean=self._clean)
        return await self._db.write(lambda conn: _save(conn, run, checkpoint, self._now()))

    def step(self, run_id: str) -> AbstractAsyncContextManager[Step]:
        return holding(run_id, self._commit_step)

    async def _commit_step(
        self, step: Held, run: Run | None, checkpoint: bytes | None
    ) -> Run | None:
        """The held approval use, the held writes, then the run's save (and what lands only
        with it: its events, the lease let go), in one transaction. An approval that cannot be
        used fails it all; a save that loses its compare-and-set (or finds no run) is raised
        after the held writes are committed."""
        if run is not None:
            run, checkpoint = masked_save(run, checkpoint, clean=self._clean)
        use, now = step.use, self._now()

        def commit(conn: sqlite3.Connection) -> Run | NotFound | VersionConflict | None:
            if use is not None:  # raises, and so rolls back the whole commit, if not usable
                put_approval(conn, consumed(load_approval(conn, use.approval_id),
                                            digest=use.digest, at=use.at))  # fmt: skip
            for record in step.tool_calls:
                put_tool_call(conn, record)
            for event in step.events:
                self._append(conn, event)
            for fact in step.facts:
                _put_fact(conn, fact, now.timestamp())
            if run is None:
                return None
            try:
                saved = _save(conn, run, checkpoint, now)
            except (NotFound, VersionConflict) as error:  # nothing of the run was written
                return error
            for event in step.with_save:
                self._append(conn, event)
            if step.release is not None:
                _release(conn, step.release, now.timestamp())
            return saved

        outcome = await self._db.write(commit)
        if isinstance(outcome, NotFound | VersionConflict):
            raise outcome
        return outcome

    async def load_checkpoint(self, run_id: str) -> bytes | None:
        def load(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT data FROM checkpoints WHERE run_id = ?", (run_id,)
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._db.read(load)

    # Approvals

    async def create_approval(
        self, approval: Approval, *, recording: AuditEvent | None = None
    ) -> Approval:
        def create(conn: sqlite3.Connection) -> Approval:
            created = insert_approval(conn, approval)  # AlreadyExists: nothing lands
            if recording is not None:
                self._append(conn, recording)
            return created

        return await self._db.write(create)

    async def get_approval(self, approval_id: str) -> Approval:
        return await self._db.read(lambda conn: load_approval(conn, approval_id))

    async def list_pending_approvals(self, *, run_id: str | None = None) -> list[Approval]:
        def select(conn: sqlite3.Connection) -> list[Approval]:
            rows = conn.execute(
                "SELECT body FROM approvals WHERE status = 'pending'"
                " AND (? IS NULL OR run_id = ?) ORDER BY requested_at",
                (run_id, run_id),
            )
            return [Approval.model_validate_json(row[0]) for row in rows]

        return await self._db.read(select)

    async def record_decision(self, approval_id: str, decision: Decision) -> DecisionOutcome:
        def decide(conn: sqlite3.Connection) -> DecisionOutcome:
            updated, outcome = apply_decision(load_approval(conn, approval_id), decision)
            if not isinstance(outcome, AlreadyDecided):
                put_approval(conn, updated)
            return outcome

        return await self._db.write(decide)

    async def close_approval(
        self, approval_id: str, *, status: ApprovalStatus, by: str, at: datetime
    ) -> DecisionOutcome:
        def close(conn: sqlite3.Connection) -> DecisionOutcome:
            outcome = closed(load_approval(conn, approval_id), status=status, by=by, at=at)
            if isinstance(outcome, Concluded):
                put_approval(conn, outcome.approval)
            return outcome

        return await self._db.write(close)

    async def escalate_approval(
        self, approval_id: str, *, hop: int, approvers: list[str], deadline: datetime | None
    ) -> Approval | None:
        def escalate(conn: sqlite3.Connection) -> Approval | None:
            moved = escalated(
                load_approval(conn, approval_id), hop=hop, approvers=approvers, deadline=deadline
            )
            if moved is not None:
                put_approval(conn, moved)
            return moved

        return await self._db.write(escalate)

    async def consume_approval(self, approval_id: str, *, digest: str, at: datetime) -> Approval:
        def consume(conn: sqlite3.Connection) -> Approval:
            used = consumed(load_approval(conn, approval_id), digest=digest, at=at)
            put_approval(conn, used)
            return used

        return await self._db.write(consume)

    # Signals

    async def publish(self, signal: Signal) -> None:
        now = self._now().timestamp()
        # Subscribers here learn at once; what a signal announces is already committed.
        self._hub.deliver(signal)
        await self._db.write(lambda conn: insert_signal(conn, self._hub.envelope(signal), at=now))

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        await self._poller.start()
        async with self._hub.subscription() as subscription:
            yield subscription

    # Small shared values

    def run_queue(self) -> None:
        return None  # runs work in the process that submits them

    # Leases: a row of kv per held run. A lapsed one is taken over like a missing one, and so
    # is one whose holder process is gone: the file is shared by processes of one machine,
    # and the token names the holder's machine and process id.

    async def take_lease(self, run_id: str, *, holder: str, ttl_seconds: float) -> Lease | None:
        now = self._now().timestamp()
        token = f"{holder}#{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex}"

        def take(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT value, expires_at FROM kv WHERE ns = 'lease' AND key = ?", (run_id,)
            ).fetchone()
            if row is not None and (row[1] <= now or _holder_gone(str(row[0]))):
                conn.execute("DELETE FROM kv WHERE ns = 'lease' AND key = ?", (run_id,))
            cursor = conn.execute(
                "INSERT OR IGNORE INTO kv (ns, key, value, expires_at) VALUES ('lease', ?, ?, ?)",
                (run_id, token, now + ttl_seconds),
            )
            return cursor.rowcount == 1

        return Lease(run_id=run_id, token=token) if await self._db.write(take) else None

    async def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> bool:
        now = self._now().timestamp()

        def renew(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE kv SET expires_at = ? WHERE ns = 'lease' AND key = ? AND value = ?"
                " AND expires_at > ?",
                (now + ttl_seconds, lease.run_id, lease.token, now),
            )
            return cursor.rowcount == 1

        return await self._db.write(renew)

    async def holds_lease(self, lease: Lease) -> bool:
        held = await self.lease_holder(lease.run_id, token=lease.token)
        return held is not None

    async def lease_holder(
        self, run_id: str, *, token: str | None = None
    ) -> tuple[str, float] | None:
        now = self._now().timestamp()
        row = await self._db.read(lambda conn: conn.execute(
            "SELECT value, expires_at FROM kv WHERE ns = 'lease' AND key = ? AND expires_at > ?",
            (run_id, now),
        ).fetchone())  # fmt: skip
        if row is None or (token is not None and row[0] != token):
            return None
        return str(row[0]).rpartition("#")[0], float(row[1]) - now

    async def release_lease(self, lease: Lease) -> bool:
        now = self._now().timestamp()
        return await self._db.write(lambda conn: _release(conn, lease, now))

    async def claim_idempotency_key(self, key: str, *, ttl_seconds: float) -> bool:
        now = self._now().timestamp()

        def claim(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "DELETE FROM kv WHERE ns = 'idem' AND key = ? AND expires_at <= ?", (key, now)
            )
            cursor = conn.execute(
                "INSERT OR IGNORE INTO kv (ns, key, value, expires_at) VALUES ('idem', ?, '', ?)",
                (key, now + ttl_seconds),
            )
            return cursor.rowcount == 1

        return await self._db.write(claim)

    async def hit_rate_limit(self, key: str, *, window_seconds: float) -> int:
        now = self._now().timestamp()
        window = math.floor(now / window_seconds)
        slot = f"{key}\x00{window}"

        def hit(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM kv WHERE ns = 'rate' AND expires_at <= ?", (now,))
            row = conn.execute(
                "INSERT INTO kv (ns, key, value, expires_at) VALUES ('rate', ?, '1', ?)"
                " ON CONFLICT (ns, key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                " RETURNING value",
                (slot, (window + 1) * window_seconds),
            ).fetchone()
            return int(row[0])

        return await self._db.write(hit)

    async def add_spend(
        self, keys: Sequence[str], usd: float, *, ttl_seconds: float
    ) -> list[float]:
        now = self._now().timestamp()

        def add(conn: sqlite3.Connection) -> list[float]:
            conn.execute("DELETE FROM kv WHERE ns = 'spend' AND expires_at <= ?", (now,))
            return [_add_spend(conn, key, usd, expires_at=now + ttl_seconds) for key in keys]

        return await self._db.write(add)

    async def get_spend(self, key: str) -> float:
        now = self._now().timestamp()

        def select(conn: sqlite3.Connection) -> float:
            row = conn.execute(
                "SELECT value FROM kv WHERE ns = 'spend' AND key = ? AND expires_at > ?",
                (key, now),
            ).fetchone()
            return 0.0 if row is None else float(row[0])

        return await self._db.read(select)

    async def set_fact(self, scope: str, key: str, value: str, *, ttl_seconds: float) -> None:
        fact = Fact(scope=scope, key=key, value=value, ttl_seconds=ttl_seconds)
        now = self._now().timestamp()
        await self._db.write(lambda conn: _put_fact(conn, fact, now))

    async def get_facts(self, scope: str) -> dict[str, str]:
        now = self._now().timestamp()

        def select(conn: sqlite3.Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT key, value FROM kv WHERE ns = ? AND expires_at > ? ORDER BY key",
                (f"fact:{scope}", now),
            )
            return {key: value for key, value in rows}

        return await self._db.read(select)

    async def set_halt(self, state: HaltState) -> None:
        await self._db.write(
            lambda conn: conn.execute(
                "INSERT INTO kv (ns, key, value) VALUES ('halt', '', ?)"
                " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
                (dump(state),),
            )
        )

    async def get_halt(self) -> HaltState | None:
        def select(conn: sqlite3.Connection) -> HaltState | None:
            row = conn.execute("SELECT value FROM kv WHERE ns = 'halt'").fetchone()
            return None if row is None else HaltState.model_validate_json(row[0])

        return await self._db.read(select)


def _save(conn: sqlite3.Connection, run: Run, checkpoint: bytes | None, now: datetime) -> Run:
    # Only the columns the checks need: parsing the stored body would cost more.
    row = conn.execute(
        "SELECT version, status, created_at FROM runs WHERE id = ?", (run.id,)
    ).fetchone()
    if row is None:
        raise NotFound("run", run.id)
    saved = checked_save(
        run,
        version=row[0],
        status=RunStatus(row[1]),
        created_at=datetime.fromisoformat(row[2]),
        now=now,
    )
    if checkpoint is not None:
        put_checkpoint(conn, run.id, checkpoint)
    return put_run(conn, saved)


def _add_spend(conn: sqlite3.Connection, key: str, usd: float, *, expires_at: float) -> float:
    # Added in Python, not in SQL: the value column is TEXT, and SQLite's own REAL-to-TEXT
    # conversion keeps 15 digits, so sums would drift; repr() round-trips exactly.
    row = conn.execute("SELECT value FROM kv WHERE ns = 'spend' AND key = ?", (key,)).fetchone()
    total = usd if row is None else float(row[0]) + usd
    conn.execute(
        "INSERT INTO kv (ns, key, value, expires_at) VALUES ('spend', ?, ?, ?)"
        " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
        (key, repr(total), expires_at),
    )
    return total


def _put_fact(conn: sqlite3.Connection, fact: Fact, now: float) -> None:
    conn.execute(
        "INSERT INTO kv (ns, key, value, expires_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value,"
        " expires_at = excluded.expires_at",
        (f"fact:{fact.scope}", fact.key, fact.value, now + fact.ttl_seconds),
    )


def _release(conn: sqlite3.Connection, lease: Lease, now: float) -> bool:
    """Delete ``lease`` if it is still held (neither lapsed nor taken again)."""
    cursor = conn.execute(
        "DELETE FROM kv WHERE ns = 'lease' AND key = ? AND value = ? AND expires_at > ?",
        (lease.run_id, lease.token, now),
    )
    return cursor.rowcount == 1


def _holder_gone(token: str) -> bool:
    """Whether the process that took the lease ``token`` has ended (on this machine: one on
    another, or one whose token says nothing, holds until its lease lapses)."""
    host, _, rest = token.rpartition("#")[2].partition("/")
    pid = rest.partition("/")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # someone else's process: it is there
        return False
    return False
