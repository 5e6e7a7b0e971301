"""The Redis run queue's rules, on a real Redis: one lease per run, only its holder lets go,
an idle entry is claimed by another worker, renewal keeps an entry from looking idle."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agent_core.models import Run, RunStatus
from agent_core.store import open_store
from agent_core.store.redis import RedisStore
from agent_core.store.run_queue import RedisRunQueue
from tests.support import eventually


@pytest.fixture
async def queue(redis_store_url: str) -> AsyncIterator[RedisRunQueue]:
    store = await open_store(redis_store_url)
    assert isinstance(store, RedisStore)
    runs = store.run_queue()
    await runs.ensure_group()
    await runs.ensure_group()  # a second worker starting: the group exists already
    try:
        yield runs
    finally:
        await store.close()


async def test_an_entry_goes_to_one_reader_and_a_lease_to_one_worker(queue: RedisRunQueue) -> None:
    await queue.enqueue("run_a")
    (entry,) = await queue.read("w1", count=10, block_seconds=0.1)
    assert entry.run_id == "run_a"
    assert await queue.read("w2", count=10, block_seconds=0.1) == []  # delivered once

    lease = await queue.acquire("run_a", worker="w1", entry=entry.id, ttl_seconds=5)
    assert lease is not None and lease.owner == "w1"
    assert await queue.acquire("run_a", worker="w2", entry=entry.id, ttl_seconds=5) is None
    assert await queue.holder("run_a") == "w1"
    assert await queue.holds(lease)


async def test_only_the_holder_lets_go_and_a_hand_over_queues_the_run_again(
    queue: RedisRunQueue,
) -> None:
    await queue.enqueue("run_a")
    (entry,) = await queue.read("w1", count=1, block_seconds=0.1)
    old = await queue.acquire("run_a", worker="w1", entry=entry.id, ttl_seconds=0.2)
    assert old is not None
    await eventually(lambda: _free(queue, "run_a"))  # w1 stalled; its lease ran out
    new = await queue.acquire("run_a", worker="w2", entry=entry.id, ttl_seconds=5)
    assert new is not None and new.token != old.token

    assert not await queue.finish(old)  # the stale holder changes nothing
    assert not await queue.renew(old, ttl_seconds=5)
    assert await queue.holder("run_a") == "w2"
    assert await queue.depth() == (0, 1)

    assert await queue.finish(new, requeue=True)  # handed over: a fresh entry, no lease
    assert await queue.holder("run_a") is None
    (again,) = await queue.read("w3", count=1, block_seconds=0.1)
    assert again.run_id == "run_a" and again.id != entry.id


async def test_a_dead_workers_entry_is_claimed_once_idle_and_renewal_keeps_it(
    queue: RedisRunQueue,
) -> None:
    await queue.enqueue("run_live")
    await queue.enqueue("run_dead")
    live, dead = await queue.read("w1", count=2, block_seconds=0.1)
    lease = await queue.acquire(live.run_id, worker="w1", entry=live.id, ttl_seconds=5)
    assert lease is not None
    assert await queue.reclaim("w2", idle_seconds=60, count=10) == []  # nothing idle yet

    async def only_the_dead_one_is_claimed() -> bool:
        assert await queue.renew(lease, ttl_seconds=5)  # w1 is alive: its entry stays fresh
        claimed = await queue.reclaim("w2", idle_seconds=0.3, count=10)
        assert live.id not in [e.id for e in claimed]
        return [e.id for e in claimed] == [dead.id]

    await eventually(only_the_dead_one_is_claimed)


async def test_a_queue_that_lost_its_group_makes_it_again_and_loses_no_entry(
    queue: RedisRunQueue,
) -> None:
    """Redis came back without the group (restarted without its data, or the stream was
    deleted): reading recreates it, from the start of the stream."""
    await queue._redis.delete(queue.stream)
    await queue.enqueue("run_a")  # XADD makes the stream again, but not the group
    (entry,) = await queue.read("w1", count=1, block_seconds=0.1)
    assert entry.run_id == "run_a"


async def _free(queue: RedisRunQueue, run_id: str) -> bool:
    return await queue.holder(run_id) is None


async def test_a_run_save_that_lets_go_of_a_workers_lease_drops_its_entry(
    redis_store_url: str,
) -> None:
    store = await open_store(redis_store_url)
    assert isinstance(store, RedisStore)
    try:
        queue = store.run_queue()
        await queue.ensure_group()
        run = await store.create_run(Run(goal="park", requester="U0REQUEST"))
        await queue.enqueue(run.id)
        (entry,) = await queue.read("w1", count=1, block_seconds=0.1)
        lease = await queue.acquire(run.id, worker="w1", entry=entry.id, ttl_seconds=5)
        assert lease is not None and await queue.depth() == (0, 1)
        async with store.step(run.id) as step:  # the run parks, and needs no worker now
            step.release_with_save(lease)
            await store.save_run(run.model_copy(update={"status": RunStatus.PLANNING}))
        assert await queue.holder(run.id) is None
        assert await queue.depth() == (0, 0)  # acknowledged: nobody claims it as idle
        assert await queue.reclaim("w2", idle_seconds=0, count=10) == []
    finally:
        await store.close()
