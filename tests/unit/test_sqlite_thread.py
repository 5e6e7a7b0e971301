"""The SQLite connection's own thread: calls run in order, answer on the loop, and one whose
caller stopped waiting before it began does not run (as with ``run_in_executor``)."""

from __future__ import annotations

import asyncio
import functools
import threading

import pytest

from agent_core.store._sqlite_conn import _Thread


async def test_calls_run_in_order_on_one_other_thread_and_answer_or_raise() -> None:
    worker = _Thread(name="test-sqlite")
    seen: list[tuple[int, str]] = []

    def job(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * 2

    def fails() -> None:
        raise ValueError("no such table")

    try:
        assert await asyncio.gather(
            *(worker.run(functools.partial(job, n)) for n in range(20))
        ) == [n * 2 for n in range(20)]
        assert [n for n, _ in seen] == list(range(20))
        assert {name for _, name in seen} == {"test-sqlite"}
        with pytest.raises(ValueError, match="no such table"):
            await worker.run(fails)
        assert await worker.run(lambda: "still serving") == "still serving"
    finally:
        worker.stop()


async def test_a_call_cancelled_before_it_began_is_not_run() -> None:
    worker = _Thread(name="test-sqlite")
    gate, ran = threading.Event(), threading.Event()
    try:
        blocking = worker.run(gate.wait)  # holds the thread until the gate opens
        later = worker.run(ran.set)
        later.cancel()
        gate.set()
        assert await blocking is True
        assert await worker.run(lambda: "after") == "after"  # the cancelled one came before
        assert not ran.is_set()
    finally:
        worker.stop()


async def test_stop_finishes_what_was_given_and_refuses_what_comes_after() -> None:
    worker = _Thread(name="test-sqlite")
    done: list[int] = []
    futures = [worker.run(functools.partial(done.append, n)) for n in range(5)]
    worker.stop()  # the calls already given run before the thread ends
    assert done == list(range(5))
    await asyncio.gather(*futures)
    with pytest.raises(RuntimeError):
        worker.run(lambda: None)


async def test_a_caller_that_stopped_waiting_after_the_call_began_is_left_alone() -> None:
    worker = _Thread(name="test-sqlite")
    started, gate = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        gate.wait()
        return "done"

    try:
        future = worker.run(slow)
        deadline = asyncio.get_running_loop().time() + 5
        while not started.is_set():  # poll with a deadline: the thread has taken it up
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.001)
        future.cancel()
        gate.set()
        assert await worker.run(lambda: "next") == "next"  # no error from the answered-late call
        assert future.cancelled()
    finally:
        worker.stop()
