"""What a run parked on an approval keeps in Redis, key by key.

    python -m bench.redis_keys [--n 1020]

Parks ``n`` runs through :func:`bench.approvals.park` on a fresh ``redis-server`` (each
waits on a HIGH tool call, as in the approvals benchmark), then reads ``used_memory``: with
the runs live (what that benchmark's row takes, clients' buffers included) and once they are
stopped. Then each kind of key (its name with the ids taken out) is deleted in turn, and the
fall of ``used_memory`` divided by the runs is what that kind weighs per run; what is left
at the end (the key table, the server's own) is the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections import defaultdict

from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from agent_core.store import open_store
from agent_core.testing.redis_server import RedisServer
from bench.approvals import park, standin, stop

_ID = re.compile(r"\b(run|apr|evt)_[0-9a-f]+")


def kind_of(key: str) -> str:
    """The key with its ids replaced by ``<run>``, ``<apr>``, ``<evt>``."""
    return _ID.sub(lambda match: f"<{match.group(1)}>", key)


async def used(client: Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def measure(n: int) -> list[tuple[str, float]]:
    """(what, bytes per run) rows, each kind of key and the totals."""
    rows: list[tuple[str, float]] = []
    async with standin() as base_url:
        with RedisServer() as redis:
            client = Redis.from_url(redis.url, decode_responses=True)
            store = await open_store(redis.url)
            empty = await used(client)
            parked = await park(store, base_url, n)
            live = await used(client) - empty
            await stop(parked)
            await store.close()
            stopped = await used(client) - empty
            kinds: dict[str, list[str]] = defaultdict(list)
            async for key in client.scan_iter(count=1000):
                kinds[kind_of(key)].append(key)
            for kind, keys in sorted(kinds.items()):
                before = await used(client)
                for start in range(0, len(keys), 500):
                    await client.delete(*keys[start : start + 500])
                rows.append((f"{kind} ({len(keys)} keys)", (before - await used(client)) / n))
            rows.append(("the rest, after the runs stopped", (await used(client) - empty) / n))
            rows.append(("used_memory per run, runs stopped", stopped / n))
            rows.append(("used_memory per run, runs live", live / n))
            await client.aclose()
    return rows


async def main(n: int) -> None:
    table = Table(title=f"Redis bytes per run, {n} runs parked on an approval")
    table.add_column("key")
    table.add_column("bytes per run", justify="right")
    for what, size in await measure(n):
        table.add_row(what, f"{size:,.0f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1020, help="runs parked")
    asyncio.run(main(parser.parse_args().n))
