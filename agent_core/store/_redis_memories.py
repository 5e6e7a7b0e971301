"""The Redis store's long-term memory records.

Keys, after the store's prefix::

    mem:<seq>           the memory as JSON (its seq is the key's, not in the body)
    memid:<id>          the memory's seq
    memseq              the last seq handed out; numbers are never reused
    mems                sorted set of every seq (member and score)
    mems:<scope>        sorted set of the scope's seqs
    memscopes           set of scopes that ever held a memory

Adding and deleting are scripts, so no reader finds an index entry without its record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from agent_core.errors import AlreadyExists, NotFound
from agent_core.memory.records import Memory
from agent_core.store._redis_client import texts, transaction
from agent_core.store._redis_keys import KeyLayout
from agent_core.store.base import touched

__all__ = ["RedisMemories"]

# The record key is built inside the script from its seq, which only the script knows;
# that is fine on one server (airlock does not support Redis Cluster).
_ADD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], seq)
redis.call('SET', ARGV[2] .. seq, ARGV[1])
redis.call('ZADD', KEYS[3], seq, seq)
redis.call('ZADD', KEYS[4], seq, seq)
redis.call('SADD', KEYS[5], ARGV[3])
return seq
"""

_DELETE = """
local seq = redis.call('GET', KEYS[1])
if not seq then return false end
local body = redis.call('GET', ARGV[1] .. seq)
redis.call('DEL', KEYS[1], ARGV[1] .. seq)
redis.call('ZREM', KEYS[2], seq)
if body then redis.call('ZREM', ARGV[2] .. cjson.decode(body).scope, seq) end
return {seq, body}
"""


class RedisMemories:
    """The memory half of :class:`~agent_core.store.redis.RedisStore`."""

    _redis: Redis
    _key: KeyLayout

    def _memory_scripts(self) -> None:
        self._add_memory = self._redis.register_script(_ADD)
        self._delete_memory = self._redis.register_script(_DELETE)

    async def add_memory(self, memory: Memory) -> Memory:
        keys = [
            self._key("memid", memory.id),
            self._key("memseq"),
            self._key("mems", memory.scope),
            self._key("mems"),
            self._key("memscopes"),
        ]
        args = [_body(memory), self._key("mem", ""), memory.scope]
        seq = int(await self._add_memory(keys=keys, args=args))
        if seq == 0:
            raise AlreadyExists("memory", memory.id)
        return memory.model_copy(update={"seq": seq})

    async def get_memory(self, memory_id: str) -> Memory:
        seq = await self._redis.get(self._key("memid", memory_id))
        raw = None if seq is None else await self._redis.get(self._key("mem", str(seq)))
        if seq is None or raw is None:
            raise NotFound("memory", memory_id)
        return _parse(int(seq), raw)

    async def delete_memory(self, memory_id: str) -> Memory | None:
        keys = [self._key("memid", memory_id), self._key("mems")]
        found: Any = await self._delete_memory(
            keys=keys, args=[self._key("mem", ""), self._key("mems", "")]
        )
        if not found or found[1] is None:
            return None
        return _parse(int(found[0]), found[1])

    async def memories_by_seq(self, scope: str, seqs: Sequence[int]) -> list[Memory]:
        if not seqs:
            return []
        raws = await self._redis.mget([self._key("mem", str(seq)) for seq in seqs])
        found = [_parse(seq, raw) for seq, raw in zip(seqs, raws, strict=True) if raw is not None]
        return [memory for memory in found if memory.scope == scope]

    async def list_memories(
        self, scope: str | None = None, *, after_seq: int = 0, limit: int = 1000
    ) -> list[Memory]:
        index = self._key("mems") if scope is None else self._key("mems", scope)
        seqs = [int(s) for s in texts(await self._redis.zrange(
            index, f"({after_seq}", "+inf", byscore=True, offset=0, num=limit
        ))]  # fmt: skip
        if not seqs:
            return []
        raws = await self._redis.mget([self._key("mem", str(seq)) for seq in seqs])
        return [_parse(seq, raw) for seq, raw in zip(seqs, raws, strict=True) if raw is not None]

    async def touch_memories(self, memory_ids: Sequence[str], *, at: datetime) -> None:
        if not memory_ids:
            return
        found = await self._redis.mget([self._key("memid", i) for i in memory_ids])
        keys = [self._key("mem", str(seq)) for seq in found if seq is not None]
        if not keys:
            return

        async def touch(pipe: Pipeline) -> None:
            raws = await pipe.mget(keys)
            pipe.multi()
            for key, raw in zip(keys, raws, strict=True):
                if raw is not None:
                    seq = int(key.rsplit(":", 1)[1])
                    pipe.set(key, _body(touched(_parse(seq, raw), at)))

        await transaction(self._redis, touch, *keys)

    async def memory_counts(self) -> dict[str, int]:
        scopes = sorted(texts(await self._redis.smembers(self._key("memscopes"))))
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope in scopes:
                pipe.zcard(self._key("mems", scope))
            counts = await pipe.execute()
        return {scope: int(n) for scope, n in zip(scopes, counts, strict=True) if int(n)}


def _body(memory: Memory) -> str:
    return memory.model_dump_json(exclude_none=True, exclude={"seq"})


def _parse(seq: int, raw: str | bytes) -> Memory:
    return Memory.model_validate_json(raw).model_copy(update={"seq": seq})
