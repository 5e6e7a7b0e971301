"""The line for run slots: first come, first served, and a freed slot goes to the next."""

from __future__ import annotations

import asyncio

from agent_core.runs.slots import RunQueue


async def test_runs_beyond_the_limit_wait_in_order() -> None:
    queue = RunQueue(limit=2)
    for run_id in ("a", "b", "c", "d", "e"):
        queue.join(run_id)
    assert queue.working == {"a", "b"}
    assert [queue.place(r) for r in ("a", "b", "c", "d", "e")] == [0, 0, 1, 2, 3]
    queue.leave("d")  # killed while waiting: those behind it move up
    assert (queue.place("c"), queue.place("e")) == (1, 2)
    queue.leave("a")
    assert queue.working == {"b", "c"} and queue.place("e") == 1
    queue.join("b")  # joining again changes nothing
    assert queue.working == {"b", "c"} and list(queue.waiting) == ["e"]


async def test_a_waiting_run_hears_when_the_line_moves() -> None:
    queue = RunQueue(limit=1)
    queue.join("a")
    queue.join("b")
    queue.join("c")
    assert not queue.waiting["c"].is_set()
    queue.leave("a")
    assert queue.waiting["c"].is_set()
    async with asyncio.timeout(1):
        await queue.moved("c")
    assert not queue.waiting["c"].is_set()
    assert (queue.working, queue.place("c")) == ({"b"}, 1)
    queue.leave("b")
    await queue.moved("c")  # no longer waiting: returns at once
    assert queue.working == {"c"}


async def test_no_limit_means_nobody_waits() -> None:
    queue = RunQueue()
    for run_id in map(str, range(100)):
        queue.join(run_id)
    assert len(queue.working) == 100 and not queue.waiting
