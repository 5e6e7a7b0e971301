"""The Redis store's message locations: one hash per subject.

Keys, after the store's prefix::

    msgs:<subject>:<id>     hash: "<channel> <ts>" -> the message's location, as JSON

The hash expires ``ttl_seconds`` after the latest message of its subject was remembered (the
messages of one subject are posted minutes apart, and kept for months).

Locations kept as session facts before they had a hash of their own are read through, with
those of the hash, in the same round trip: a rolling upgrade may have old processes writing
facts beside new ones reading locations. Those facts expire on their own (90 days after they
were written); then this read-through finds none.
"""

from __future__ import annotations

from redis.asyncio import Redis

from agent_core.models import MessageLocation, MessageSubject
from agent_core.store._redis_client import milliseconds, texts
from agent_core.store._redis_keys import KeyLayout
from agent_core.store.base import LEGACY_MESSAGE_FACTS, dump, legacy_location, readable_locations

__all__ = ["RedisMessages"]


class RedisMessages:
    """The message-location part of :class:`~agent_core.store.redis.RedisStore`."""

    _redis: Redis
    _key: KeyLayout

    async def remember_message(self, location: MessageLocation, *, ttl_seconds: float) -> None:
        key = self._key("msgs", location.subject, location.subject_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, f"{location.channel} {location.ts}", dump(location))
            pipe.pexpire(key, milliseconds(ttl_seconds))
            await pipe.execute()

    async def messages_of(self, subject: MessageSubject, subject_id: str) -> list[MessageLocation]:
        legacy = LEGACY_MESSAGE_FACTS[subject] + subject_id
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hvals(self._key("msgs", subject, subject_id))
            pipe.zrange(self._key("factnames", legacy), 0, -1)
            pipe.smembers(self._key("facts", legacy))  # the fact index before it was sorted
            bodies, listed, listed_before = await pipe.execute()
        found = readable_locations(texts(bodies), subject, subject_id)
        names = sorted({*texts(listed), *texts(listed_before)})
        if not names:
            return found
        values = await self._redis.mget([self._key("fact", legacy, name) for name in names])
        seen = {(at.channel, at.ts) for at in found}
        for name, value in zip(names, values, strict=True):
            old = None if value is None else legacy_location(subject, subject_id, name, str(value))
            if old is not None and (old.channel, old.ts) not in seen:
                seen.add((old.channel, old.ts))
                found.append(old)
        return sorted(found, key=lambda at: (float(at.ts), at.channel))
