"""The Redis store's connection to its server, and how it outlasts a lost connection.

The pool blocks when every connection is busy instead of failing at once, and
retries a command whose connection broke. redis-py does not retry a WATCH
transaction whose connection broke, so :func:`transaction` does. Replies come
back decoded, as text.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "BACKOFF",
    "RECONNECT_ERRORS",
    "connect",
    "milliseconds",
    "texts",
    "transaction",
]

# The store's name in log lines, as before its client had a module of its own.
logger = logging.getLogger("agent_core.store.redis")

T = TypeVar("T")

RECONNECT_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
BACKOFF = ExponentialWithJitterBackoff(cap=2.0, base=0.05)
_TRANSACTION_ATTEMPTS = 8


def connect(url: str, *, max_connections: int, connect_timeout: float) -> Redis:
    """A client for the server at ``url``, on a pool of at most ``max_connections``."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=connect_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(BACKOFF, retries=6),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        decode_responses=True,
    )
    return Redis.from_pool(pool)


async def transaction(redis: Redis, fn: Callable[[Pipeline], Awaitable[T]], *keys: str) -> T:
    """Run ``fn`` under WATCH on ``keys``; it is run again if any changed meanwhile.

    redis-py does not retry a WATCH pipeline whose connection broke, so this does, with
    backoff. If the break came after EXEC took effect, the rerun sees the write: appends
    and decisions recognise their own earlier write, compare-and-sets report a conflict.
    """
    for attempt in itertools.count(1):
        try:
            result: T = await redis.transaction(fn, *keys, value_from_callable=True)
        except RECONNECT_ERRORS:
            if attempt >= _TRANSACTION_ATTEMPTS:
                raise
            logger.warning("redis transaction interrupted; retrying", extra={"attempt": attempt})
            await asyncio.sleep(BACKOFF.compute(attempt))
        else:
            return result
    raise AssertionError("unreachable")


def texts(values: Iterable[Any]) -> list[str]:
    """Redis replies as text (the client decodes responses)."""
    return [str(value) for value in values]


def milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))
