"""The run queue of a Redis deployment: a stream read by workers, and leases on runs.

A run to work on (new, retried, decided, handed over) is an entry on the stream
``<prefix>queue``, read through the consumer group ``workers``. A worker that takes an
entry also takes the run's lease, ``<prefix>lease:<run id>``, a key that names it and
expires unless renewed; the entry stays in the worker's pending list until the worker is
done with the run (it ended, parked for a person, or was handed over), so a worker that
dies leaves its entries pending, and another claims them (XAUTOCLAIM) once they have been
idle as long as a lease lasts. Renewing a lease also claims its entry back, which keeps it
from looking idle.

Every write that ends a worker's hold (release, acknowledge, hand over) is a script that
first checks the lease is still the worker's: a worker that lost its lease (paused,
partitioned) cannot acknowledge away the entry of the worker that took the run over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

# A worker's loops ride out a Redis restart with the client's own reconnect rules.
from agent_core.store._redis_client import BACKOFF, RECONNECT_ERRORS, milliseconds
from agent_core.store._redis_keys import KeyLayout
from agent_core.store.base import Lease

__all__ = ["BACKOFF", "GROUP", "RECONNECT_ERRORS", "Entry", "Lease", "RedisRunQueue"]

logger = logging.getLogger("agent_core.store.redis")

GROUP = "workers"
"""The consumer group every worker reads the queue through."""

_MAX_LENGTH = 1_000_000
"""Entries are deleted once done; this only bounds a queue nobody reads."""

# A token names the holder and is unique (a counter), so an old holder's token never matches.
_ACQUIRE = """
local n = redis.call('INCR', KEYS[2])
local token = ARGV[1] .. '#' .. n
if redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[2]) then return token end
return false
"""

# Extend the lease, and claim its entry back (resetting its idle time), if still ours.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[5] ~= '' then redis.call('XCLAIM', KEYS[2], ARGV[3], ARGV[4], 0, ARGV[5], 'JUSTID') end
return 1
"""

# Let go of the run, if still ours: drop the lease and the entry; re-queue it if asked.
_FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[3] ~= '' then
  redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
  redis.call('XDEL', KEYS[2], ARGV[3])
end
if ARGV[4] == '1' then redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'run', ARGV[5]) end
return 1
"""


@dataclass(frozen=True)
class Entry:
    """One queued request to work on a run."""

    id: str
    run_id: str


class RedisRunQueue:
    """The queue stream, its consumer group and the leases, on one Redis store's keys."""

    def __init__(self, redis: Redis, key: KeyLayout) -> None:
        self._redis = redis
        self._key = key
        self.stream = key("queue")
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._finish = redis.register_script(_FINISH)

    async def ensure_group(self) -> None:
        """Create the stream and its consumer group unless they exist."""
        try:
            await self._redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def enqueue(self, run_id: str) -> str:
        """Ask for ``run_id`` to be worked on; the entry's id."""
        entry = await self._redis.xadd(
            self.stream, {"run": run_id}, maxlen=_MAX_LENGTH, approximate=True
        )
        return str(entry)

    async def read(self, consumer: str, *, count: int, block_seconds: float) -> list[Entry]:
        """Up to ``count`` new entries for ``consumer``, waiting up to ``block_seconds``."""
        reply = await self._grouped(
            self._redis.xreadgroup,
            GROUP, consumer, {self.stream: ">"}, count=count, block=milliseconds(block_seconds),
        )  # fmt: skip
        entries: list[Entry] = []
        for _stream, messages in reply or []:
            entries += _entries(messages)
        return entries

    async def reclaim(self, consumer: str, *, idle_seconds: float, count: int) -> list[Entry]:
        """Entries pending longer than ``idle_seconds`` (their worker is gone), now ours."""
        reply = await self._grouped(
            self._redis.xautoclaim,
            self.stream, GROUP, consumer, milliseconds(idle_seconds), start_id="0-0", count=count,
        )  # fmt: skip
        # [next start, claimed entries, ids of entries deleted meanwhile]
        entries = _entries(reply[1])
        for gone in reply[2] if len(reply) > 2 else []:
            await self.drop(str(gone))
        return entries

    async def drop(self, entry: str) -> None:
        """Acknowledge and delete an entry that asks for nothing (a run over, or owned)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, entry)
            pipe.xdel(self.stream, entry)
            await pipe.execute()

    async def acquire(
        self, run_id: str, *, worker: str, entry: str, ttl_seconds: float
    ) -> Lease | None:
        """The run's lease for ``worker``; None while another worker holds it."""
        token = await self._acquire(
            keys=[self._key("lease", run_id), self._key("lease-seq")],
            args=[worker, milliseconds(ttl_seconds)],
        )
        return None if token is None else Lease(run_id=run_id, token=str(token), entry=entry)

    async def renew(self, lease: Lease, *, ttl_seconds: float) -> bool:
        """Extend ``lease`` by ``ttl_seconds``; False if it is no longer this worker's."""
        held = await self._renew(
            keys=[self._key("lease", lease.run_id), self.stream],
            args=[lease.token, milliseconds(ttl_seconds), GROUP, lease.owner, lease.entry],
        )
        return bool(held)

    async def holds(self, lease: Lease) -> bool:
        """Whether ``lease`` is still its worker's."""
        return bool(await self._redis.get(self._key("lease", lease.run_id)) == lease.token)

    async def holder(self, run_id: str) -> str | None:
        """The worker holding the run's lease, if any."""
        token = await self._redis.get(self._key("lease", run_id))
        return None if token is None else str(token).rpartition("#")[0]

    async def held_for(self, run_id: str) -> tuple[str, float] | None:
        """Who holds the run's lease and for how many more seconds; None if nobody does."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._key("lease", run_id))
            pipe.pttl(self._key("lease", run_id))
            token, left = await pipe.execute()
        if token is None or left < 0:
            return None
        return str(token).rpartition("#")[0], left / 1000

    async def finish(self, lease: Lease, *, requeue: bool = False) -> bool:
        """Release ``lease`` and drop its entry; with ``requeue``, queue the run again.

        False, and nothing written, if the lease is no longer this worker's.
        """
        done = await self._finish(
            keys=[self._key("lease", lease.run_id), self.stream],
            args=[lease.token, GROUP, lease.entry, "1" if requeue else "0", lease.run_id,
                  _MAX_LENGTH],
        )  # fmt: skip
        return bool(done)

    def lease_key(self, lease: Lease) -> str:
        """The key that holds ``lease`` (to watch it)."""
        return self._key("lease", lease.run_id)

    async def holds_in(self, pipe: Pipeline, lease: Lease) -> bool:
        """Whether ``lease`` is still its worker's, read on ``pipe`` (watching its key)."""
        return bool(await pipe.get(self.lease_key(lease)) == lease.token)

    def finish_in(self, pipe: Pipeline, lease: Lease) -> None:
        """Queue on ``pipe`` (in ``MULTI``, its key watched and found ``lease``'s) what
        :meth:`finish` does without ``requeue``: the lease and its entry dropped."""
        pipe.delete(self.lease_key(lease))
        if lease.entry:
            pipe.xack(self.stream, GROUP, lease.entry)
            pipe.xdel(self.stream, lease.entry)

    async def depth(self) -> tuple[int, int]:
        """Entries waiting for a worker, and entries a worker is working on."""
        try:
            groups = await self._redis.xinfo_groups(self.stream)
        except ResponseError:  # no stream yet
            return 0, 0
        for group in groups:
            if group["name"] == GROUP:
                return int(group.get("lag") or 0), int(group["pending"])
        return 0, 0

    async def forget_idle_workers(self, *, idle_seconds: float) -> list[str]:
        """Remove consumers with nothing pending that have been idle that long (dead workers)."""
        gone = []
        try:
            consumers = await self._redis.xinfo_consumers(self.stream, GROUP)
        except ResponseError:
            return []
        for consumer in consumers:
            if consumer["pending"] == 0 and consumer["idle"] > milliseconds(idle_seconds):
                await self._redis.xgroup_delconsumer(self.stream, GROUP, consumer["name"])
                gone.append(str(consumer["name"]))
        return gone

    async def _grouped(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a consumer-group command, creating the group first if Redis lost it."""
        try:
            return await command(*args, **kwargs)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            logger.warning("run queue had no consumer group; creating it")
            await self.ensure_group()
            return await command(*args, **kwargs)


def _entries(messages: list[Any]) -> list[Entry]:
    entries = []
    for entry_id, fields in messages:
        if fields and "run" in fields:  # a deleted entry comes back without fields
            entries.append(Entry(id=str(entry_id), run_id=str(fields["run"])))
    return entries
