"""Redis-only behaviour: riding out a restart, and a bounded connection pool under load."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from agent_core.errors import StandInError
from agent_core.models import RunKilled, RunStatus
from agent_core.store import open_store
from agent_core.testing.redis_server import RedisServer
from tests.contract.test_store import a_run
from tests.support import eventually, missing

pytestmark = pytest.mark.processes


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, persisting with an append-only file."""
    try:
        server = RedisServer(appendonly=True)
        server.start()
    except StandInError as error:
        missing(str(error))
        return
    try:
        yield server
    finally:
        server.stop()


async def test_the_store_reconnects_and_keeps_its_data(aof_redis: RedisServer) -> None:
    publisher = await open_store(aof_redis.url)
    listener = await open_store(aof_redis.url)
    try:
        run = await publisher.create_run(a_run())
        async with listener.subscribe() as signals:
            await asyncio.to_thread(aof_redis.restart)

            # The first command after the restart reconnects by itself.
            assert (await listener.get_run(run.id)).status is RunStatus.QUEUED
            await publisher.save_run(run.model_copy(update={"status": RunStatus.PLANNING}))

            # Pub/sub has no replay: keep publishing until the re-subscribed listener hears one.
            async def heard() -> bool:
                await publisher.publish(RunKilled(run_id=run.id, by="U0ADMIN"))
                return not signals.queue.empty()

            await eventually(heard, timeout=10, interval=0.05, load_scaled=True)
            assert await signals.get() == RunKilled(run_id=run.id, by="U0ADMIN")
        assert (await listener.get_run(run.id)).status is RunStatus.PLANNING
    finally:
        await publisher.close()
        await listener.close()


async def test_more_concurrent_operations_than_connections_wait_instead_of_failing(
    redis_store_url: str,
) -> None:
    store = await open_store(redis_store_url, redis_max_connections=4)
    try:
        runs = [a_run() for _ in range(200)]
        await asyncio.gather(*(store.create_run(run) for run in runs))
        loaded = await asyncio.gather(*(store.get_run(run.id) for run in runs))
        assert [r.id for r in loaded] == [r.id for r in runs]
    finally:
        await store.close()


async def test_runs_stored_before_the_requester_index_are_found_by_requester(
    redis_url: str,
) -> None:
    url = f"{redis_url}?prefix=by-requester-{uuid.uuid4().hex[:8]}:"
    store = await open_store(url)
    try:
        runs = [await store.create_run(a_run(requester=f"U0{i % 2}")) for i in range(5)]
        # As an older airlock left them: no requester index and no mark that it was built.
        raw = store._redis  # type: ignore[attr-defined]
        prefix = url.split("prefix=")[1]
        stale = [k async for k in raw.scan_iter(f"{prefix}runs:by:*")]
        stale += [k async for k in raw.scan_iter(f"{prefix}indexed:*")]
        assert stale and await raw.delete(*stale) == len(stale)
    finally:
        await store.close()
    reopened = await open_store(url)
    try:
        found = await reopened.list_runs(requester="U00", newest_first=True)
        assert [r.id for r in found] == [r.id for r in reversed(runs[0::2])]
    finally:
        await reopened.close()
