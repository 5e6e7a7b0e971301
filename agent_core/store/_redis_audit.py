"""The Redis store's audit trails: events, each trail's sealed head, and the anchor.

Keys, after the store's prefix::

    audit:<run id>       list of the run's events, as JSON (packed when shorter:
                         ``_redis_codec``), oldest first
    audithead:<run id>   the trail's sealed head, as JSON (packed when shorter)
    auditanchor          the sealed count of every trail started, as JSON

An append is one compare-and-set script (:data:`_APPEND`): it RPUSHes the event and SETs
the new head only if the head is still the one the append was built on, so both land or
neither does, and a lost race is read again and retried. A trail's first append also
compares and rewrites the anchor, so two trails starting at once get different numbers.
The seals need the key, which never reaches Redis, so they are made here, before the
script, by :mod:`agent_core.audit.chain` (the same functions the SQLite store uses).
A store appending to a trail whose head it wrote last sends the script alone: one round
trip. A purge is a WATCH/MULTI transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from agent_core.audit.chain import (
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
from agent_core.store._redis_codec import record_value, unpack
from agent_core.store._redis_keys import KeyLayout
from agent_core.store.base import dump
from agent_core.store.steps import held

__all__ = ["RedisAudit"]


class RedisAudit:
    """The audit half of :class:`~agent_core.store.redis.RedisStore`."""

    _redis: Redis
    _key: KeyLayout
    _clock: Clock
    _audit_key: AuditKey
    _audit_heads: HeadCache

    def _audit_scripts(self) -> None:
        self._append_script = self._redis.register_script(_APPEND)

    async def append_audit(self, event: AuditEvent) -> AuditEvent:
        step = held(event.run_id)
        if step is not None:  # sealed when the step commits
            step.events.append(event)
            return event
        return await self._append_audit(event)

    async def _append_audit(self, event: AuditEvent) -> AuditEvent:
        run_id = event.run_id
        keys = [
            self._key("audithead", run_id),
            self._key("audit", run_id),
            self._key("auditanchor"),
        ]
        read = self._cached(run_id)
        while True:
            if read is None:
                read = await self._read(run_id)
            write = appended(
                event, head=read.head, anchor=read.anchor, last=read.last, key=self._audit_key,
                now=self._clock.now(), checked=read.checked,
            )  # fmt: skip
            if write is None:  # a retried append whose first try took effect
                return await _newest(self._redis, keys[1], run_id)
            assert write.event is not None
            text = record_value(write.head)
            anchor = "" if write.anchor is None else dump(write.anchor)
            args = [read.head_text, read.anchor_text, read.last_text,
                    record_value(write.event), text, anchor]  # fmt: skip
            if await self._append_script(keys=keys, args=args):
                self._audit_heads.remember(write.head, text)
                return write.event
            read = None  # another process wrote first: read what it wrote, and try again

    def _cached(self, run_id: str) -> _Read | None:
        """The head this store last wrote, to try appending to without reading it first."""
        last = self._audit_heads.last(run_id)
        if last is None or needs_anchor(last[1], self._audit_key):
            return None
        return _Read(head=last[1], head_text=last[0], checked=True)

    async def _read(self, run_id: str) -> _Read:
        """What an append builds on, as stored now (the script checks it is still so)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._key("audithead", run_id))
            pipe.get(self._key("auditanchor"))
            pipe.lindex(self._key("audit", run_id), -1)
            raw_head, raw_anchor, raw_last = await pipe.execute()
        if raw_head is None:
            last = (
                None
                if raw_last is None
                else parsed(AuditEvent, _text(raw_last), trail=run_id, what="it")
            )
            return _Read(anchor=_anchor(raw_anchor), anchor_text=raw_anchor or "", last=last,
                         last_text=raw_last or "")  # fmt: skip
        known = self._audit_heads.known(run_id, raw_head)
        head = known or parsed(AuditHead, _text(raw_head), trail=run_id, what="its head")
        if not needs_anchor(head, self._audit_key):
            return _Read(head=head, head_text=raw_head, checked=known is not None)
        return _Read(head=head, head_text=raw_head, anchor=_anchor(raw_anchor),
                     anchor_text=raw_anchor or "")  # fmt: skip

    async def _read_for_write(self, pipe: Pipeline, run_id: str) -> _Read:
        """The trail's head; for a trail without one, also the anchor and its newest event,
        and the anchor for an unsealed head this store's key would take over."""
        head_key, anchor_key = self._key("audithead", run_id), self._key("auditanchor")
        raw = await pipe.get(head_key)
        if raw is not None:
            known = self._audit_heads.known(run_id, raw)
            if known is not None:
                return _Read(head=known, checked=True)
            head = parsed(AuditHead, _text(raw), trail=run_id, what="its head")
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
        last_event = (
            None if last is None else parsed(AuditEvent, _text(last), trail=run_id, what="it")
        )
        return _Read(anchor=_anchor(anchor), last=last_event)

    def _put(self, pipe: Pipeline, write: Write) -> str:
        """Queue the head (and the anchor, if it changed); the head as it will be stored."""
        text = record_value(write.head)
        pipe.set(self._key("audithead", write.head.run_id), text)
        if write.anchor is not None:
            pipe.set(self._key("auditanchor"), dump(write.anchor))
        return text

    async def list_audit(self, run_id: str) -> list[AuditEvent]:
        raws = texts(await self._redis.lrange(self._key("audit", run_id), 0, -1))
        return [AuditEvent.model_validate_json(_text(raw)) for raw in raws]

    async def read_audit(self, run_id: str) -> AuditTrail:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._key("audithead", run_id))
            pipe.lrange(self._key("audit", run_id), 0, -1)
            head, raws = await pipe.execute()
        return read_trail(run_id, None if head is None else _text(head), map(_text, raws))

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


_UNREAD = "-"
"""In place of a value the append did not read, so the script does not compare it."""

# KEYS: the head, the events, the anchor. ARGV: the head, anchor and newest event as read
# ("" for none, "-" for not read), then the event, the new head and the new anchor ("" to
# leave it). Written only if what was read is still so: a compare-and-set in one step.
_APPEND = """
local function same(expected, value)
  return expected == '-' or (value or '') == expected
end
if not same(ARGV[1], redis.call('GET', KEYS[1]))
   or (ARGV[2] ~= '-' and not same(ARGV[2], redis.call('GET', KEYS[3])))
   or (ARGV[3] ~= '-' and not same(ARGV[3], redis.call('LINDEX', KEYS[2], -1))) then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('SET', KEYS[1], ARGV[5])
if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[6]) end
return 1
"""


@dataclass(kw_only=True, frozen=True)
class _Read:
    """What a write to a trail builds on (see :func:`agent_core.audit.chain.appended`),
    and the stored text of each part, for the compare-and-set."""

    head: AuditHead | None = None
    head_text: str = ""
    anchor: AuditAnchor | None = None
    anchor_text: str = _UNREAD
    last: AuditEvent | None = None
    last_text: str = _UNREAD
    checked: bool = False


async def _newest(redis: Redis, events: str, run_id: str) -> AuditEvent:
    raw = await redis.lindex(events, -1)
    if raw is None:
        raise AuditTampered(run_id, "its newest event, the last its head counts, is gone")
    return parsed(AuditEvent, _text(raw), trail=run_id, what="its newest event")


def _text(raw: str | bytes) -> str | bytes:
    """The JSON a stored head or event holds (packed or not); a packed value that does not
    unpack as it is, so that it fails to parse and is reported like any other garbage."""
    try:
        return unpack(raw)
    except ValueError:
        return raw


def _anchor(raw: str | bytes | None) -> AuditAnchor | None:
    return None if raw is None else parsed(AuditAnchor, raw, trail="the anchor", what="it")


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
