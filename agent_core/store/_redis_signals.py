"""Signals from other processes through Redis pub/sub, re-subscribed after a lost connection.

One task per store listens on the signals channel and hands what arrives to the
store's :class:`~agent_core.store.base.SignalHub`. It starts with the first
subscription, which waits until the channel is subscribed, so that a signal
published once ``subscribe()`` has returned reaches it. Pub/sub keeps nothing
for a listener that is away: what is published while the connection is down
does not arrive, and the listener subscribes again, with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from agent_core.store._redis_client import BACKOFF, RECONNECT_ERRORS
from agent_core.store.base import SignalHub

__all__ = ["SignalListener"]

# The store's name in log lines, as before its signal listener had a module of its own.
logger = logging.getLogger("agent_core.store.redis")


class SignalListener:
    """Delivers the signals any process publishes on ``channel`` to ``hub``."""

    def __init__(self, redis: Redis, channel: str, hub: SignalHub) -> None:
        self._redis = redis
        self._channel = channel
        self._hub = hub
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def start(self) -> None:
        """Start listening unless it has started already; return once subscribed."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="airlock-redis-signals")
        await self._listening.wait()

    async def close(self) -> None:
        """Stop listening."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None

    async def _listen(self) -> None:
        """Deliver other processes' signals; re-subscribe after a lost connection."""
        failures = 0
        while True:
            pubsub: PubSub = self._redis.pubsub(ignore_subscribe_messages=False)
            try:
                await pubsub.subscribe(self._channel)
                async for message in pubsub.listen():
                    failures = 0
                    self._on_message(message)
            except RECONNECT_ERRORS:
                failures += 1
                logger.warning(
                    "signal subscription lost; reconnecting", extra={"attempt": failures}
                )
                await asyncio.sleep(BACKOFF.compute(failures))
            finally:
                await pubsub.aclose()  # unannotated in redis-py

    def _on_message(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            self._listening.set()
        elif message["type"] == "message":
            signal = self._hub.open_envelope(message["data"])
            if signal is not None:
                self._hub.deliver(signal)
