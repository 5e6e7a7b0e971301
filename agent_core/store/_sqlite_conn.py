"""The SQLite store's one connection, used only from its own thread.

Every operation runs on a dedicated thread, so the event loop never blocks on disk and
operations of one process never interleave. Writes use ``BEGIN IMMEDIATE`` so two processes
deciding the same approval serialise on SQLite's write lock; WAL lets readers go on
meanwhile, and ``synchronous=FULL`` keeps a committed decision through a power cut, not only
through a crash.

Writes are committed in groups: the writes that arrive while a commit is under way wait for
it, then go in one transaction, each inside a savepoint of its own (one that fails is rolled
back alone, and fails alone), with one ``COMMIT`` (one fsync) for them all. A write is
answered only after that commit, so whatever was answered is durable, and a process killed
mid-group leaves none of the group (SQLite's commit is atomic). A write alone pays nothing
more than before: it is a group of one.

The thread is the connection's own, fed by a plain queue and answering on the event loop
with ``call_soon_threadsafe``: half the CPU of ``run_in_executor`` per hop (no
``concurrent.futures`` future, lock and callbacks chained to an asyncio one), and a goal
makes some forty hops.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from agent_core.errors import StoreError
from agent_core.store._sqlite_memories import MEMORY_SCHEMA
from agent_core.store._sqlite_rows import SCHEMA

__all__ = ["ThreadedConnection"]

T = TypeVar("T")


@dataclass(kw_only=True)
class _Write:
    fn: Callable[[sqlite3.Connection], object]
    done: asyncio.Future[object]
    result: object = None
    error: BaseException | None = None


class ThreadedConnection:
    """A connection to the SQLite file at ``path`` that runs each operation as a transaction."""

    def __init__(self, path: Path, *, busy_timeout: float) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._thread = _Thread(name="airlock-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._waiting: list[_Write] = []
        self._idle = asyncio.Event()
        """Set while no group is being committed."""
        self._idle.set()
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
        return await self._thread.run(fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside a write transaction (with the writes that arrive meanwhile:
        see the module's docstring); its result once committed."""
        loop = asyncio.get_running_loop()
        write = _Write(fn=fn, done=loop.create_future())
        self._waiting.append(write)
        if self._idle.is_set():
            # From the next turn of the loop: the writes of this turn go in one group.
            self._idle.clear()
            loop.call_soon(self._commit_waiting)
        # A caller that stops waiting (cancelled) leaves its write in its group, as a thread
        # already running a write went on with it before groups.
        return cast(T, await write.done)

    def _commit_waiting(self) -> None:
        """Commit the writes waiting as one group; the next group starts when it is answered.

        No task drives the groups: the thread's answer, on the event loop, answers the group
        and starts the next (a task costs a turn of the loop more per write, and its own)."""
        group, self._waiting = self._waiting, []
        self.hops += 1
        try:
            self._thread.call(
                functools.partial(self._in_group, group), functools.partial(self._committed, group)
            )
        except Exception as error:  # the thread was stopped: the group fails with it
            self._committed(group, None, error)

    def _committed(self, group: list[_Write], _: object, failed: BaseException | None) -> None:
        _answer(group, failed)  # failed: the commit, and every write of the group with it
        if self._waiting:
            self._commit_waiting()
        else:
            self._idle.set()

    def _in_group(self, group: list[_Write]) -> None:
        conn = self._conn
        if conn is None:
            raise StoreError(f"the store at {self.path} is closed")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for write in group:
                conn.execute("SAVEPOINT write")
                try:
                    write.result = write.fn(conn)
                except Exception as error:
                    conn.execute("ROLLBACK TO write")
                    write.error = error
                conn.execute("RELEASE write")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.commits += 1

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside one read transaction."""
        return await self._call(lambda: self._read(fn))

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise StoreError(f"the store at {self.path} is closed")
        conn.execute("BEGIN")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def close(self) -> None:
        """Commit what is waiting, close the connection and stop its thread."""
        await self._idle.wait()
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._thread.stop()


def _answer(group: list[_Write], failed: BaseException | None) -> None:
    """Tell each write's caller (if it still waits) what became of it."""
    for write in group:
        if write.done.done():  # its caller stopped waiting
            continue
        error = failed or write.error
        if error is not None:
            write.done.set_exception(error)
        else:
            write.done.set_result(write.result)


_Answer = Callable[[Any, BaseException | None], None]
_Job = tuple[Callable[[], Any], "asyncio.Future[Any] | None", _Answer, asyncio.AbstractEventLoop]


class _Thread:
    """One thread running the callables given to :meth:`run` one at a time, in order.

    Started on the first call. A call whose caller stopped waiting before the thread took it
    up is not run (as ``run_in_executor`` skips a work item cancelled before it started);
    :meth:`stop` lets the calls already given finish first.
    """

    def __init__(self, *, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._lock = threading.Lock()

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """A future of ``fn()``'s result (or error), run on the thread."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._put(fn, future, functools.partial(_settle, future))
        return future

    def call(self, fn: Callable[[], Any], answer: _Answer) -> None:
        """Run ``fn`` on the thread, then ``answer(result, error)`` on the event loop."""
        self._put(fn, None, answer)

    def _put(
        self, fn: Callable[[], Any], future: asyncio.Future[Any] | None, answer: _Answer
    ) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._stopped:
                raise RuntimeError("cannot run a call after the thread was stopped")
            if self._thread is None:
                # Daemon, so a store never closed cannot hold the process at exit; a call
                # cut short there was never answered, and SQLite rolls its transaction back.
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            self._jobs.put((fn, future, answer, loop))

    def stop(self) -> None:
        """Run what was given, then end the thread (and wait for it)."""
        with self._lock:
            self._stopped = True
            thread = self._thread
            self._jobs.put(None)
        if thread is not None:
            thread.join()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future, answer, loop = job
            if future is not None and future.cancelled():  # its caller stopped waiting first
                continue
            try:
                result, error = fn(), None
            except BaseException as raised:  # handed to the caller, as run_in_executor does
                result, error = None, raised
            try:
                loop.call_soon_threadsafe(answer, result, error)
            except RuntimeError:  # the loop is closed: nobody is left to answer
                continue


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
