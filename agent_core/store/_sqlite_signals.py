"""Signals between processes on one SQLite file, through its ``signals`` table.

SQLite cannot notify another process, so a published signal is a row, kept
for ten minutes, and a store that has subscribers reads the rows added since
the last one it saw, every ``poll_interval``, and hands them to its
:class:`~agent_core.store.base.SignalHub`. Polling starts with the first
subscription, from the newest row at that moment; a failed poll (the file
locked or busy) is logged and tried again at the next tick.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3

from agent_core.store._sqlite_conn import ThreadedConnection
from agent_core.store.base import SignalHub

__all__ = ["SignalPoller", "insert_signal"]

# The store's name in log lines, as before its signal polling had a module of its own.
logger = logging.getLogger("agent_core.store.sqlite")

_SIGNAL_RETENTION_SECONDS = 600.0


class SignalPoller:
    """Brings signals written by other processes on the same file to ``hub``."""

    def __init__(self, db: ThreadedConnection, hub: SignalHub, *, poll_interval: float) -> None:
        self._db = db
        self._hub = hub
        self._poll_interval = poll_interval
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start polling, from the newest signal now stored, unless it has started already."""
        if self._poller is None:
            last_seen = await self._db.read(_last_signal_id)
            if self._poller is None:  # another start() may have started it meanwhile
                self._poller = asyncio.create_task(
                    self._poll(last_seen), name="airlock-sqlite-signals"
                )

    async def close(self) -> None:
        """Stop polling."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None

    async def _poll(self, last_seen: int) -> None:
        """Bring signals written by other processes on the same file to our subscribers."""
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                rows = await self._db.read(functools.partial(_signals_after, last_seen=last_seen))
            except sqlite3.OperationalError:
                logger.warning("signal poll failed; retrying", exc_info=True)
                continue
            for row_id, body in rows:
                last_seen = row_id
                signal = self._hub.open_envelope(body)
                if signal is not None:
                    self._hub.deliver(signal)


def insert_signal(conn: sqlite3.Connection, body: str, *, at: float) -> None:
    """Store a signal's envelope, and forget those older than the retention period."""
    conn.execute("INSERT INTO signals (at, body) VALUES (?, ?)", (at, body))
    conn.execute("DELETE FROM signals WHERE at < ?", (at - _SIGNAL_RETENTION_SECONDS,))


def _last_signal_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM signals").fetchone()[0])


def _signals_after(conn: sqlite3.Connection, *, last_seen: int) -> list[tuple[int, str]]:
    query = "SELECT id, body FROM signals WHERE id > ? ORDER BY id"
    return [(int(row[0]), str(row[1])) for row in conn.execute(query, (last_seen,))]
