"""The SQLite store's audit trails: events, each trail's sealed head, and the anchor.

``audit`` holds the events (one row each, whole as JSON), ``audit_heads`` each trail's head
and ``kv`` (namespace ``audit``, key ``anchor``) the anchor. An append writes the event and
the new head in one ``BEGIN IMMEDIATE`` transaction. The head a store wrote last is kept in
memory: the next append seals after it without reading it, and replaces it only if it is
still stored byte for byte (a compare-and-set under the write lock), so an append by another
process in between is found and the head read and checked again; the chain never forks.
Only a trail's first append also reads and writes the anchor. What is
written is decided by :mod:`agent_core.audit.chain`, the same as for Redis.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from agent_core.audit.chain import (
    AuditAnchor,
    AuditHead,
    AuditKey,
    AuditTrail,
    HeadCache,
    Write,
    appended,
    needs_anchor,
    parsed,
    purge,
    read_trail,
)
from agent_core.clock import Clock
from agent_core.errors import AuditTampered
from agent_core.models import AuditEvent
from agent_core.store.base import dump
from agent_core.store.steps import held

if TYPE_CHECKING:
    from agent_core.store._sqlite_conn import ThreadedConnection

__all__ = ["SqliteAudit"]


class SqliteAudit:
    """The audit half of :class:`~agent_core.store.sqlite.SqliteStore`."""

    _db: ThreadedConnection
    _clock: Clock
    _audit_key: AuditKey
    _audit_heads: HeadCache
    """Used on the connection's thread only, like the connection."""

    async def append_audit(self, event: AuditEvent) -> AuditEvent:
        step = held(event.run_id)
        if step is not None:  # sealed when the step commits
            step.events.append(event)
            return event
        return await self._db.write(lambda conn: self._append(conn, event))

    def _append(self, conn: sqlite3.Connection, event: AuditEvent) -> AuditEvent:
        """Append ``event`` inside the caller's write transaction; the event as sealed."""
        return self._append_to_known(conn, event) or self._append_read(conn, event)

    def _append_to_known(self, conn: sqlite3.Connection, event: AuditEvent) -> AuditEvent | None:
        """Append after the head this store last wrote or checked, without reading it: the
        head is replaced only if it is still stored exactly so (a compare-and-set inside the
        write lock). None when it is not (another process appended since, or the head was
        changed), or when this store knows no head: the caller reads the head instead."""
        cached = self._audit_heads.last(event.run_id)
        if cached is None or needs_anchor(cached[1], self._audit_key):
            return None
        text, head = cached
        write = appended(event, head=head, anchor=None, last=None, key=self._audit_key,
                         now=self._clock.now(), checked=True)  # fmt: skip
        if write is None:  # a retried append: answered from what is stored
            return None
        assert write.event is not None
        stored = dump(write.head)
        swapped = conn.execute(
            "UPDATE audit_heads SET body = ? WHERE run_id = ? AND body = ?",
            (stored, event.run_id, text),
        )
        if swapped.rowcount != 1:
            return None
        _insert(conn, write.event)
        self._audit_heads.remember(write.head, stored)
        return write.event

    def _append_read(self, conn: sqlite3.Connection, event: AuditEvent) -> AuditEvent:
        raw = _raw_head(conn, event.run_id)
        known = None if raw is None else self._audit_heads.known(event.run_id, raw)
        head = known or _head(event.run_id, raw)
        write = appended(
            event,
            head=head,
            anchor=_anchor(conn) if needs_anchor(head, self._audit_key) else None,
            last=_last(conn, event.run_id) if head is None else None,
            key=self._audit_key,
            now=self._clock.now(),
            checked=known is not None,
        )
        if write is None:  # appended already: appending is idempotent
            assert head is not None
            return _event(conn, event.run_id, head.count)
        assert write.event is not None
        _insert(conn, write.event)
        self._audit_heads.remember(write.head, _put(conn, write))
        return write.event

    async def list_audit(self, run_id: str) -> list[AuditEvent]:
        return await self._db.read(lambda conn: _events(conn, run_id))

    async def read_audit(self, run_id: str) -> AuditTrail:
        def read(conn: sqlite3.Connection) -> AuditTrail:
            head = conn.execute(
                "SELECT body FROM audit_heads WHERE run_id = ?", (run_id,)
            ).fetchone()
            rows = conn.execute("SELECT body FROM audit WHERE run_id = ? ORDER BY seq", (run_id,))
            return read_trail(run_id, None if head is None else head[0], (r[0] for r in rows))

        return await self._db.read(read)

    async def audit_anchor(self) -> AuditAnchor | None:
        return await self._db.read(_anchor)

    async def audit_runs(self) -> list[str]:
        def select(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT run_id FROM audit UNION SELECT run_id FROM audit_heads ORDER BY 1"
            )
            return [row[0] for row in rows]

        return await self._db.read(select)

    async def delete_audit(self, run_id: str) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            head = _head(run_id, _raw_head(conn, run_id))
            write = purge(
                run_id,
                head=head,
                anchor=_anchor(conn) if needs_anchor(head, self._audit_key) else None,
                last=_last(conn, run_id) if head is None else None,
                key=self._audit_key,
                now=self._clock.now(),
            )
            if write is None:
                return 0
            _put(conn, write)
            return conn.execute("DELETE FROM audit WHERE run_id = ?", (run_id,)).rowcount

        return await self._db.write(delete)


def _insert(conn: sqlite3.Connection, event: AuditEvent) -> None:
    try:
        conn.execute(
            "INSERT INTO audit (run_id, seq, body) VALUES (?, ?, ?)",
            (event.run_id, event.seq, dump(event)),
        )
    except sqlite3.IntegrityError:
        why = f"an event {event.seq} is stored already, though its head ends before"
        raise AuditTampered(event.run_id, why) from None


def _raw_head(conn: sqlite3.Connection, run_id: str) -> str | None:
    row = conn.execute("SELECT body FROM audit_heads WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else str(row[0])


def _head(run_id: str, raw: str | None) -> AuditHead | None:
    return None if raw is None else parsed(AuditHead, raw, trail=run_id, what="its head")


def _anchor(conn: sqlite3.Connection) -> AuditAnchor | None:
    row = conn.execute("SELECT value FROM kv WHERE ns = 'audit' AND key = 'anchor'").fetchone()
    return None if row is None else parsed(AuditAnchor, row[0], trail="the anchor", what="it")


def _last(conn: sqlite3.Connection, run_id: str) -> AuditEvent | None:
    row = conn.execute(
        "SELECT body FROM audit WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
    ).fetchone()
    return None if row is None else parsed(AuditEvent, row[0], trail=run_id, what="its last event")


def _event(conn: sqlite3.Connection, run_id: str, seq: int) -> AuditEvent:
    row = conn.execute(
        "SELECT body FROM audit WHERE run_id = ? AND seq = ?", (run_id, seq)
    ).fetchone()
    if row is None:
        raise AuditTampered(run_id, f"event {seq}, the last its head counts, is gone")
    return parsed(AuditEvent, row[0], trail=run_id, what=f"event {seq}")


def _events(conn: sqlite3.Connection, run_id: str) -> list[AuditEvent]:
    rows = conn.execute("SELECT body FROM audit WHERE run_id = ? ORDER BY seq", (run_id,))
    return [AuditEvent.model_validate_json(row[0]) for row in rows]


def _put(conn: sqlite3.Connection, write: Write) -> str:
    """Write the head (and the anchor, if it changed); the head as stored."""
    text = dump(write.head)
    conn.execute(
        "INSERT INTO audit_heads (run_id, body) VALUES (?, ?)"
        " ON CONFLICT (run_id) DO UPDATE SET body = excluded.body",
        (write.head.run_id, text),
    )
    if write.anchor is not None:
        conn.execute(
            "INSERT INTO kv (ns, key, value) VALUES ('audit', 'anchor', ?)"
            " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
            (dump(write.anchor),),
        )
    return text
