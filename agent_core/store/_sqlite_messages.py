"""The SQLite store's message locations: one row per message, the location as JSON.

The table is created, and the locations kept as session facts before it existed are copied
into it, by :func:`migrate` when the store opens: the file's ``user_version`` counts the
migrations done, so each runs once, in the same transaction that records it.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from agent_core.clock import Clock
from agent_core.models import MessageLocation, MessageSubject
from agent_core.store.base import LEGACY_MESSAGE_FACTS, dump, legacy_location, readable_locations

if TYPE_CHECKING:
    from agent_core.store._sqlite_conn import ThreadedConnection

__all__ = ["SCHEMA_VERSION", "SqliteMessages", "migrate"]

SCHEMA_VERSION = 1
"""The ``user_version`` of a file whose migrations are all done."""

_TABLE = """
CREATE TABLE IF NOT EXISTS message_locations (
    subject TEXT NOT NULL, subject_id TEXT NOT NULL, channel TEXT NOT NULL, ts TEXT NOT NULL,
    body TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (subject, subject_id, channel, ts))
"""


def migrate(conn: sqlite3.Connection, *, now: float) -> None:
    """Bring the file to :data:`SCHEMA_VERSION` (inside the caller's write transaction)."""
    conn.execute(_TABLE)  # not executescript: that would commit first
    if conn.execute("PRAGMA user_version").fetchone()[0] >= 1:
        return
    for subject, prefix in LEGACY_MESSAGE_FACTS.items():
        ns = f"fact:{prefix}"
        rows = conn.execute(
            "SELECT ns, key, value, expires_at FROM kv"
            " WHERE substr(ns, 1, ?) = ? AND expires_at > ?",
            (len(ns), ns, now),
        )
        for scope, name, value, expires_at in rows.fetchall():
            location = legacy_location(subject, scope[len(ns) :], name, value)
            if location is not None:
                _put(conn, location, expires_at=expires_at, replace=False)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _put(
    conn: sqlite3.Connection, location: MessageLocation, *, expires_at: float, replace: bool
) -> None:
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
    conn.execute(
        f"{verb} INTO message_locations (subject, subject_id, channel, ts, body, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (location.subject.value, location.subject_id, location.channel, location.ts,
         dump(location), expires_at),
    )  # fmt: skip


class SqliteMessages:
    """The message-location part of :class:`~agent_core.store.sqlite.SqliteStore`."""

    _db: ThreadedConnection
    _clock: Clock

    async def remember_message(self, location: MessageLocation, *, ttl_seconds: float) -> None:
        expires_at = self._clock.now().timestamp() + ttl_seconds
        await self._db.write(lambda conn: _put(conn, location, expires_at=expires_at, replace=True))

    async def messages_of(self, subject: MessageSubject, subject_id: str) -> list[MessageLocation]:
        now = self._clock.now().timestamp()

        def select(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT body FROM message_locations"
                " WHERE subject = ? AND subject_id = ? AND expires_at > ?",
                (subject.value, subject_id, now),
            )
            return [row[0] for row in rows]

        return readable_locations(await self._db.read(select), subject, subject_id)
