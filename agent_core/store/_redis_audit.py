"""The Redis store's audit trails: events, each trail's sealed head, and the anchor.

Keys, after the store's prefix::

    audit:<run id>       list of the run's events, as JSON, oldest first
    audithead:<run id>   the trail's sealed head, as JSON
    auditanchor          the sealed count of every trail started, as JSON

An append is one optimistic transaction: WATCH the head, read it, then RPUSH the event
and SET the new head in one MULTI/EXEC, so both land or neither does. A trail's first
append also WATCHes and rewrites the anchor, so two trails starting at once get
different numbers. The seals need the key, which never reaches Redis, so they are made
here, between the read and the MULTI, by :mod:`agent_core.audit_chain` (the same
functions the SQLite store uses).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from agent_core.audit_chain import (
    AuditAnchor,
    AuditHead,
    AuditKey,
    AuditTrail,
    HeadCache,
    Write,
    appended,
    needs_anchor,
    parsed,
    purge,
    read_trail,
)
from agent_core.clock import Clock
from agent_core.errors import AuditTampered
from agent_core.models import AuditEvent
from agent_core.store._redis_client import texts, transaction
from agent_core.store._redis_keys import KeyLayout
from agent_core.store.base import dump

__all__ = ["RedisAudit"]


class RedisAudit:
    """The audit half of :class:`~agent_core.store.redis.RedisStore`."""

    _redis: Redis
    _key: KeyLayout
    _clock: Clock
    _audit_key: AuditKey
    _audit_heads: HeadCache

    async def append_audit(self, event: AuditEvent) -> AuditEvent:
        run_id = event.run_id
        events, head_key = self._key("audit", run_id), self._key("audithead", run_id)
        written: list[tuple[AuditHead, str]] = []

        async def append(pipe: Pipeline) -> AuditEvent:
            read = await self._read_for_write(pipe, run_id)
            write = appended(
                event,
                head=read.head,
                anchor=read.anchor,
                last=read.last,
                key=self._audit_key,
                now=self._clock.now(),
                checked=read.checked,
            )
            if write is None:  # a retried append whose first try took effect
                return await _newest(pipe, events, run_id)
            assert write.event is not None
            pipe.multi()
            pipe.rpush(events, dump(write.event))
            written[:] = [(write.head, self._put(pipe, write))]
            return write.event

        appended_event = await transaction(self._redis, append, head_key)
        for head, text in written:  # only once EXEC took it
            self._audit_heads.remember(head, text)
        return appended_event

    async def _read_for_write(self, pipe: Pipeline, run_id: str) -> _Read:
        """The trail's head; for a trail without one, also the anchor and its newest event,
        and the anchor for an unsealed head this store's key would take over."""
        head_key, anchor_key = self._key("audithead", run_id), self._key("auditanchor")
        raw = await pipe.get(head_key)
        if raw is not None:
            known = self._audit_heads.known(run_id, raw)
            if known is not None:
                return _Read(head=known, checked=True)
            head = parsed(AuditHead, raw, trail=run_id, what="its head")
            if not needs_anchor(head, self._audit_key):
                return _Read(head=head)
            await pipe.watch(anchor_key)
            return _Read(head=head, anchor=_anchor(await pipe.get(anchor_key)))
        events = self._key("audit", run_id)
        await pipe.watch(anchor_key, events)
        anchor = await pipe.get(anchor_key)
        last = await pipe.lindex(events, -1)
        if await pipe.get(head_key) is not None:
            # Another process started the trail between these reads: the event seen may be
            # its first, whose head came with it. Read again rather than call that tampering.
            raise WatchError(f"audit trail {run_id} started meanwhile")
        last_event = None if last is None else parsed(AuditEvent, last, trail=run_id, what="it")
        return _Read(anchor=_anchor(anchor), last=last_event)

    def _put(self, pipe: Pipeline, write: Write) -> str:
        """Queue the head (and the anchor, if it changed); the head as it will be stored."""
        text = dump(write.head)
        pipe.set(self._key("audithead", write.head.run_id), text)
        if write.anchor is not None:
            pipe.set(self._key("auditanchor"), dump(write.anchor))
        return text

    async def list_audit(self, run_id: str) -> list[AuditEvent]:
        raws = texts(await self._redis.lrange(self._key("audit", run_id), 0, -1))
        return [AuditEvent.model_validate_json(raw) for raw in raws]

    async def read_audit(self, run_id: str) -> AuditTrail:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._key("audithead", run_id))
            pipe.lrange(self._key("audit", run_id), 0, -1)
            head, raws = await pipe.execute()
        return read_trail(run_id, head, raws)

    async def audit_anchor(self) -> AuditAnchor | None:
        return _anchor(await self._redis.get(self._key("auditanchor")))

    async def audit_runs(self) -> list[str]:
        # Found by the keys themselves, not an index an attacker could edit to hide a trail.
        ids: set[str] = set()
        for kind in ("audit", "audithead"):
            start = len(self._key(kind, ""))
            pattern = _glob_escape(self._key(kind, "")) + "*"
            async for key in self._redis.scan_iter(match=pattern, count=1000):
                ids.add(key[start:])
        return sorted(ids)

    async def delete_audit(self, run_id: str) -> int:
        events, head_key = self._key("audit", run_id), self._key("audithead", run_id)

        async def delete(pipe: Pipeline) -> int:
            await pipe.watch(events)
            read = await self._read_for_write(pipe, run_id)
            write = purge(
                run_id,
                head=read.head,
                anchor=read.anchor,
                last=read.last,
                key=self._audit_key,
                now=self._clock.now(),
            )
            if write is None:
                return 0
            count = int(await pipe.llen(events))
            pipe.multi()
            pipe.delete(events)
            self._put(pipe, write)
            return count

        return await transaction(self._redis, delete, head_key)


@dataclass(kw_only=True, frozen=True)
class _Read:
    """What a write to a trail builds on (see :func:`agent_core.audit_chain.appended`)."""

    head: AuditHead | None = None
    anchor: AuditAnchor | None = None
    last: AuditEvent | None = None
    checked: bool = False


async def _newest(pipe: Pipeline, events: str, run_id: str) -> AuditEvent:
    raw = await pipe.lindex(events, -1)
    if raw is None:
        raise AuditTampered(run_id, "its newest event, the last its head counts, is gone")
    return parsed(AuditEvent, raw, trail=run_id, what="its newest event")


def _anchor(raw: str | bytes | None) -> AuditAnchor | None:
    return None if raw is None else parsed(AuditAnchor, raw, trail="the anchor", what="it")


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
