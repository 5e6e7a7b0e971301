"""The threads file tools do their blocking I/O in, apart from the loop's default executor.

A file call that never returns (a hung network mount, a FUSE server that stopped
answering) keeps its thread for good: a timeout cancels the await, not the system call.
In the default executor such threads would starve everything else that uses it (DNS
lookups, memory search) and, being joined at exit, keep the process from ending. Here
they are daemon threads of a small pool of their own: at worst file tools wait in line
and time out, nothing else notices, and the process still exits.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

__all__ = ["DaemonThreads", "in_file_thread"]

P = ParamSpec("P")
T = TypeVar("T")

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonThreads(Executor):
    """Up to ``size`` daemon threads, started as needed, running submitted calls in order."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue ``fn(*args, **kwargs)``; a thread is started if none is idle and there is room."""
        future: Future[T] = Future()
        self._work.put((future, fn, args, kwargs))
        if not self._idle.acquire(blocking=False):
            self._grow()
        return future

    def _grow(self) -> None:
        with self._lock:
            if len(self._threads) >= self._size:
                return
            thread = threading.Thread(
                target=self._serve, name=f"{self._name}_{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        while True:
            future, fn, args, kwargs = self._work.get()
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as error:  # handed to the awaiting caller
                    future.set_exception(error)
                else:
                    future.set_result(result)
            del future, fn, args, kwargs
            self._idle.release()


_FILE_THREADS = DaemonThreads(8, "airlock-files")


async def in_file_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` in a file-I/O thread; cancelling the await abandons the call."""
    loop = asyncio.get_running_loop()
    return await asyncio.wrap_future(_FILE_THREADS.submit(fn, *args, **kwargs), loop=loop)
