"""The embedded Store: one SQLite file, durable, shareable by processes on one machine.

Every operation is one transaction run on a dedicated thread, so the event
loop never blocks on disk and operations of one process never interleave.
Writes use ``BEGIN IMMEDIATE`` so two processes deciding the same approval
serialise on SQLite's write lock; WAL lets readers go on meanwhile, and
``synchronous=FULL`` keeps a committed decision through a power cut, not
only through a crash. Signals from other processes arrive by polling a table.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from agent_core.clock import Clock, SystemClock
from agent_core.decisions import apply_decision
from agent_core.errors import AlreadyExists, NotFound, StoreError
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
from agent_core.store.base import (
    SignalHub,
    Subscription,
    checked_save,
    closed,
    consumed,
    dump,
    transitioned,
)

__all__ = ["SqliteStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL,
    version INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, created_at);
CREATE TABLE IF NOT EXISTS checkpoints (run_id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, status TEXT NOT NULL,
    requested_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, requested_at);
CREATE TABLE IF NOT EXISTS signals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at REAL,
    PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS audit (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (run_id, seq));
"""

_SIGNAL_RETENTION_SECONDS = 600.0


class SqliteStore:
    """A :class:`~agent_core.store.base.Store` in one SQLite file."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Clock | None = None,
        poll_interval: float = 0.1,
        busy_timeout: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._poll_interval = poll_interval
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airlock-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._hub = SignalHub()
        self._poller: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, path: Path | str, *, clock: Clock | None = None, poll_interval: float = 0.1
    ) -> SqliteStore:
        """Open (creating if needed) the store at ``path``."""
        store = cls(path, clock=clock, poll_interval=poll_interval)
        await store._call(store._connect)
        return store

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        self._conn = conn

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside one write transaction."""
        return await self._call(lambda: self._in_transaction(fn, "BEGIN IMMEDIATE"))

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(lambda: self._in_transaction(fn, "BEGIN"))

    def _in_transaction(self, fn: Callable[[sqlite3.Connection], T], begin: str) -> T:
        conn = self._conn
        if conn is None:
            raise StoreError(f"the store at {self.path} is closed")
        conn.execute(begin)
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _now(self) -> datetime:
        return self._clock.now()

    async def ping(self) -> None:
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    # Runs

    async def create_run(self, run: Run) -> Run:
        def create(conn: sqlite3.Connection) -> Run:
            try:
                conn.execute(
                    "INSERT INTO runs (id, status, created_at, version, body) VALUES (?,?,?,?,?)",
                    (run.id, run.status, run.created_at.isoformat(), run.version, dump(run)),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists("run", run.id) from None
            return run

        return await self._write(create)

    async def get_run(self, run_id: str) -> Run:
        return await self._read(lambda conn: _load_run(conn, run_id))

    async def list_runs(self, *, status: RunStatus | None = None, limit: int = 100) -> list[Run]:
        def select(conn: sqlite3.Connection) -> list[Run]:
            if status is None:
                query, args = "SELECT body FROM runs ORDER BY created_at LIMIT ?", (limit,)
            else:
                query = "SELECT body FROM runs WHERE status = ? ORDER BY created_at LIMIT ?"
                args = (status, limit)  # type: ignore[assignment]
            return [Run.model_validate_json(row[0]) for row in conn.execute(query, args)]

        return await self._read(select)

    async def save_run(self, run: Run, *, checkpoint: bytes | None = None) -> Run:
        def save(conn: sqlite3.Connection) -> Run:
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
                now=self._now(),
            )
            if checkpoint is not None:
                _put_checkpoint(conn, run.id, checkpoint)
            return _put_run(conn, saved)

        return await self._write(save)

    async def transition_run(
        self, run_id: str, *, expected: RunStatus, target: RunStatus, error: str | None = None
    ) -> Run:
        def transition(conn: sqlite3.Connection) -> Run:
            stored = _load_run(conn, run_id)
            moved = transitioned(
                stored, expected=expected, target=target, now=self._now(), error=error
            )
            return _put_run(conn, moved.model_copy(update={"version": stored.version + 1}))

        return await self._write(transition)

    async def save_checkpoint(self, run_id: str, data: bytes) -> None:
        await self._write(lambda conn: _put_checkpoint(conn, run_id, data))

    async def load_checkpoint(self, run_id: str) -> bytes | None:
        def load(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT data FROM checkpoints WHERE run_id = ?", (run_id,)
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._read(load)

    # Approvals

    async def create_approval(self, approval: Approval) -> Approval:
        def create(conn: sqlite3.Connection) -> Approval:
            try:
                conn.execute(
                    "INSERT INTO approvals (id, run_id, status, requested_at, body)"
                    " VALUES (?,?,?,?,?)",
                    (
                        approval.id,
                        approval.run_id,
                        approval.status,
                        approval.requested_at.isoformat(),
                        dump(approval),
                    ),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists("approval", approval.id) from None
            return approval

        return await self._write(create)

    async def get_approval(self, approval_id: str) -> Approval:
        return await self._read(lambda conn: _load_approval(conn, approval_id))

    async def list_pending_approvals(self, *, run_id: str | None = None) -> list[Approval]:
        def select(conn: sqlite3.Connection) -> list[Approval]:
            rows = conn.execute(
                "SELECT body FROM approvals WHERE status = 'pending'"
                " AND (? IS NULL OR run_id = ?) ORDER BY requested_at",
                (run_id, run_id),
            )
            return [Approval.model_validate_json(row[0]) for row in rows]

        return await self._read(select)

    async def record_decision(self, approval_id: str, decision: Decision) -> DecisionOutcome:
        def decide(conn: sqlite3.Connection) -> DecisionOutcome:
            updated, outcome = apply_decision(_load_approval(conn, approval_id), decision)
            if not isinstance(outcome, AlreadyDecided):
                _put_approval(conn, updated)
            return outcome

        return await self._write(decide)

    async def close_approval(
        self, approval_id: str, *, status: ApprovalStatus, by: str, at: datetime
    ) -> DecisionOutcome:
        def close(conn: sqlite3.Connection) -> DecisionOutcome:
            outcome = closed(_load_approval(conn, approval_id), status=status, by=by, at=at)
            if isinstance(outcome, Concluded):
                _put_approval(conn, outcome.approval)
            return outcome

        return await self._write(close)

    async def consume_approval(self, approval_id: str, *, digest: str, at: datetime) -> Approval:
        def consume(conn: sqlite3.Connection) -> Approval:
            used = consumed(_load_approval(conn, approval_id), digest=digest, at=at)
            _put_approval(conn, used)
            return used

        return await self._write(consume)

    # Signals

    async def publish(self, signal: Signal) -> None:
        now = self._now().timestamp()

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO signals (at, body) VALUES (?, ?)", (now, self._hub.envelope(signal))
            )
            conn.execute("DELETE FROM signals WHERE at < ?", (now - _SIGNAL_RETENTION_SECONDS,))

        await self._write(insert)
        self._hub.deliver(signal)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        if self._poller is None:
            last_seen = await self._read(_last_signal_id)
            if self._poller is None:  # another subscribe() may have started it meanwhile
                self._poller = asyncio.create_task(
                    self._poll(last_seen), name="airlock-sqlite-signals"
                )
        subscription = self._hub.add()
        try:
            yield subscription
        finally:
            self._hub.remove(subscription)

    async def _poll(self, last_seen: int) -> None:
        """Bring signals written by other processes on the same file to our subscribers."""
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                rows = await self._read(functools.partial(_signals_after, last_seen=last_seen))
            except sqlite3.OperationalError:
                logger.warning("signal poll failed; retrying", exc_info=True)
                continue
            for row_id, body in rows:
                last_seen = row_id
                signal = self._hub.open_envelope(body)
                if signal is not None:
                    self._hub.deliver(signal)

    # Small shared values

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

        return await self._write(claim)

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

        return await self._write(hit)

    async def set_fact(self, scope: str, key: str, value: str, *, ttl_seconds: float) -> None:
        expires_at = self._now().timestamp() + ttl_seconds
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO kv (ns, key, value, expires_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value,"
                " expires_at = excluded.expires_at",
                (f"fact:{scope}", key, value, expires_at),
            )
        )

    async def get_facts(self, scope: str) -> dict[str, str]:
        now = self._now().timestamp()

        def select(conn: sqlite3.Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT key, value FROM kv WHERE ns = ? AND expires_at > ? ORDER BY key",
                (f"fact:{scope}", now),
            )
            return {key: value for key, value in rows}

        return await self._read(select)

    async def set_halt(self, state: HaltState) -> None:
        await self._write(
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

        return await self._read(select)

    # Audit

    async def append_audit(self, event: AuditEvent) -> AuditEvent:
        def append(conn: sqlite3.Connection) -> AuditEvent:
            last = conn.execute(
                "SELECT body FROM audit WHERE run_id = ? ORDER BY seq DESC LIMIT 1",
                (event.run_id,),
            ).fetchone()
            previous = None if last is None else AuditEvent.model_validate_json(last[0])
            if previous is not None and previous.id == event.id:
                return previous  # appended already: appending is idempotent
            chained = event.chained(
                seq=1 if previous is None else previous.seq + 1,
                prev_hash="" if previous is None else previous.hash,
            )
            conn.execute(
                "INSERT INTO audit (run_id, seq, body) VALUES (?, ?, ?)",
                (chained.run_id, chained.seq, dump(chained)),
            )
            return chained

        return await self._write(append)

    async def list_audit(self, run_id: str) -> list[AuditEvent]:
        def select(conn: sqlite3.Connection) -> list[AuditEvent]:
            rows = conn.execute("SELECT body FROM audit WHERE run_id = ? ORDER BY seq", (run_id,))
            return [AuditEvent.model_validate_json(row[0]) for row in rows]

        return await self._read(select)


def _last_signal_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM signals").fetchone()[0])


def _signals_after(conn: sqlite3.Connection, *, last_seen: int) -> list[tuple[int, str]]:
    query = "SELECT id, body FROM signals WHERE id > ? ORDER BY id"
    return [(int(row[0]), str(row[1])) for row in conn.execute(query, (last_seen,))]


def _load_run(conn: sqlite3.Connection, run_id: str) -> Run:
    row = conn.execute("SELECT body FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise NotFound("run", run_id)
    return Run.model_validate_json(row[0])


def _put_run(conn: sqlite3.Connection, run: Run) -> Run:
    conn.execute(
        "UPDATE runs SET status = ?, version = ?, body = ? WHERE id = ?",
        (run.status, run.version, dump(run), run.id),
    )
    return run


def _put_checkpoint(conn: sqlite3.Connection, run_id: str, data: bytes) -> None:
    conn.execute(
        "INSERT INTO checkpoints (run_id, data) VALUES (?, ?)"
        " ON CONFLICT (run_id) DO UPDATE SET data = excluded.data",
        (run_id, data),
    )


def _load_approval(conn: sqlite3.Connection, approval_id: str) -> Approval:
    row = conn.execute("SELECT body FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    if row is None:
        raise NotFound("approval", approval_id)
    return Approval.model_validate_json(row[0])


def _put_approval(conn: sqlite3.Connection, approval: Approval) -> None:
    conn.execute(
        "UPDATE approvals SET status = ?, body = ? WHERE id = ?",
        (approval.status, dump(approval), approval.id),
    )
