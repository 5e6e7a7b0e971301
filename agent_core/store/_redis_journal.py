"""The Redis store's tool-call journal: one hash per run.

Keys, after the store's prefix::

    toolcalls:<run id>      hash: tool_use id -> the call's journal record, as JSON

A record is replaced whole (HSET), and the calls of a resumed round are read in one HMGET.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from agent_core.store._redis_keys import KeyLayout
from agent_core.store.base import dump, masked_tool_call
from agent_core.store.steps import held
from agent_core.toolcalls import ToolCallRecord

__all__ = ["RedisJournal"]


class RedisJournal:
    """The journal part of :class:`~agent_core.store.redis.RedisStore`."""

    _redis: Redis
    _key: KeyLayout

    async def save_tool_call(self, record: ToolCallRecord) -> None:
        stored = masked_tool_call(record)
        step = held(stored.run_id)
        if step is not None:
            step.tool_calls.append(stored)
            return
        await self._put_tool_call(self._redis, stored)

    def _put_tool_call(self, redis: Redis | Pipeline, record: ToolCallRecord) -> Any:
        """Write ``record`` (masked already); awaitable on a client, queued on a pipeline."""
        return redis.hset(self._key("toolcalls", record.run_id), record.tool_use_id, dump(record))

    async def tool_calls(
        self, run_id: str, tool_use_ids: Sequence[str]
    ) -> dict[str, ToolCallRecord]:
        if not tool_use_ids:
            return {}
        raws = await self._redis.hmget(self._key("toolcalls", run_id), list(tool_use_ids))
        return {
            key: ToolCallRecord.model_validate_json(raw)
            for key, raw in zip(tool_use_ids, raws, strict=True)
            if raw is not None
        }
