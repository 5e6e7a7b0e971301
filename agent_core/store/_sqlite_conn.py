"""The SQLite store's one connection, used only from its own thread.

Every operation is one transaction run on a dedicated thread, so the event
loop never blocks on disk and operations of one process never interleave.
Writes use ``BEGIN IMMEDIATE`` so two processes deciding the same approval
serialise on SQLite's write lock; WAL lets readers go on meanwhile, and
``synchronous=FULL`` keeps a committed decision through a power cut, not
only through a crash.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from agent_core.errors import StoreError
from agent_core.store._sqlite_memories import MEMORY_SCHEMA
from agent_core.store._sqlite_rows import SCHEMA

__all__ = ["ThreadedConnection"]

T = TypeVar("T")


class ThreadedConnection:
    """A connection to the SQLite file at ``path`` that runs each operation as a transaction."""

    def __init__(self, path: Path, *, busy_timeout: float) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airlock-sqlite")
        self._conn: sqlite3.Connection | None = None
        self.hops = 0
        """Operations run on the connection's thread so far (each a thread hop). Read by
        the benchmarks."""
        self.commits = 0
        """Write transactions committed so far: each is one durable write (an fsync of the
        WAL under ``synchronous=FULL``). Read by the benchmarks."""

    async def open(self) -> None:
        """Open (creating if needed) the file and its tables."""
        await self._call(self._connect)

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA + MEMORY_SCHEMA)
        self._conn = conn

    async def _call(self, fn: Callable[[], T]) -> T:
        self.hops += 1
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside one write transaction."""
        return await self._call(lambda: self._in_transaction(fn, "BEGIN IMMEDIATE"))

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside one read transaction."""
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
        if begin != "BEGIN":
            self.commits += 1
        return result

    async def close(self) -> None:
        """Close the connection and stop its thread."""
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
