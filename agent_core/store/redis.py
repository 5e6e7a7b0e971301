"""The shared Store: Redis, for many front ends and workers at once.

Records are JSON strings; sorted sets index runs by status and approvals by
state. Every read-modify-write (a status compare-and-set, a decision, an
audit append) is an optimistic WATCH/MULTI transaction, retried on conflict,
so the same pure rules as the SQLite store decide what is written. Signals
travel over Redis pub/sub; the listener re-subscribes after a lost connection.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from agent_core.clock import Clock, SystemClock
from agent_core.decisions import apply_decision
from agent_core.errors import AlreadyExists, NotFound
from agent_core.models import (
    AlreadyDecided,
    Approval,
    ApprovalStatus,
    AuditEvent,
    Concluded,
    Decision,
    DecisionOutcome,
    HaltState,
    Run,
    RunStatus,
    Signal,
)
from agent_core.store.base import (
    SignalHub,
    Subscription,
    checked_save,
    closed,
    consumed,
    dump,
    transitioned,
)

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_RECONNECT_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
_BACKOFF = ExponentialWithJitterBackoff(cap=2.0, base=0.05)
_TRANSACTION_ATTEMPTS = 8

# SET the record if absent, then add its id to each index (sorted sets) with one score.
_CREATE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
for i = 2, #KEYS do redis.call('ZADD', KEYS[i], ARGV[3], ARGV[2]) end
return 1
"""


class RedisStore:
    """A :class:`~agent_core.store.base.Store` on a Redis server, shared by processes."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "airlock:",
        clock: Clock | None = None,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._clock = clock or SystemClock()
        self._hub = SignalHub()
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._create_script = redis.register_script(_CREATE)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        prefix: str = "airlock:",
        clock: Clock | None = None,
        max_connections: int = 64,
        connect_timeout: float = 5.0,
    ) -> RedisStore:
        """Connect to the Redis server at ``url``.

        The pool blocks (up to ``connect_timeout``) when all ``max_connections``
        are busy instead of failing at once, which redis-py 8's default pool does.
        """
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=connect_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(_BACKOFF, retries=6),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            decode_responses=True,
        )
        store = cls(Redis.from_pool(pool), prefix=prefix, clock=clock)
        await store.ping()
        return store

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    def _now(self) -> datetime:
        return self._clock.now()

    async def _transaction(self, fn: Callable[[Pipeline], Awaitable[T]], *keys: str) -> T:
        """Run ``fn`` under WATCH on ``keys``; it is run again if any changed meanwhile.

        redis-py does not retry a WATCH pipeline whose connection broke, so this does, with
        backoff. If the break came after EXEC took effect, the rerun sees the write: appends
        and decisions recognise their own earlier write, compare-and-sets report a conflict.
        """
        for attempt in itertools.count(1):
            try:
                result: T = await self._redis.transaction(fn, *keys, value_from_callable=True)
            except _RECONNECT_ERRORS:
                if attempt >= _TRANSACTION_ATTEMPTS:
                    raise
                logger.warning(
                    "redis transaction interrupted; retrying", extra={"attempt": attempt}
                )
                await asyncio.sleep(_BACKOFF.compute(attempt))
            else:
                return result
        raise AssertionError("unreachable")

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        await self._redis.aclose(close_connection_pool=True)

    # Runs

    async def create_run(self, run: Run) -> Run:
        indexes = [self._key("runs"), self._key("runs", run.status)]
        await self._create("run", run.id, dump(run), run.created_at, indexes)
        return run

    async def _create(
        self, kind: str, record_id: str, body: str, at: datetime, indexes: list[str]
    ) -> None:
        """Write a new record and its index entries in one atomic step."""
        keys = [self._key(kind, record_id), *indexes]
        created = await self._create_script(keys=keys, args=[body, record_id, at.timestamp()])
        if not created:
            raise AlreadyExists(kind, record_id)

    async def get_run(self, run_id: str) -> Run:
        raw = await self._redis.get(self._key("run", run_id))
        if raw is None:
            raise NotFound("run", run_id)
        return Run.model_validate_json(raw)

    async def list_runs(self, *, status: RunStatus | None = None, limit: int = 100) -> list[Run]:
        index = self._key("runs") if status is None else self._key("runs", status)
        ids = _texts(await self._redis.zrange(index, 0, limit - 1))
        if not ids:
            return []
        raws = await self._redis.mget([self._key("run", run_id) for run_id in ids])
        return [Run.model_validate_json(raw) for raw in raws if raw is not None]

    async def save_run(self, run: Run, *, checkpoint: bytes | None = None) -> Run:
        key = self._key("run", run.id)

        async def save(pipe: Pipeline) -> Run:
            stored = await self._watched_run(pipe, key, run.id)
            checked = checked_save(
                run,
                version=stored.version,
                status=stored.status,
                created_at=stored.created_at,
                now=self._now(),
            )
            saved = self._put_run(pipe, stored, checked)
            if checkpoint is not None:
                pipe.set(self._key("checkpoint", run.id), checkpoint.hex())
            return saved

        return await self._transaction(save, key)

    async def transition_run(
        self, run_id: str, *, expected: RunStatus, target: RunStatus, error: str | None = None
    ) -> Run:
        key = self._key("run", run_id)

        async def transition(pipe: Pipeline) -> Run:
            stored = await self._watched_run(pipe, key, run_id)
            moved = transitioned(
                stored, expected=expected, target=target, now=self._now(), error=error
            )
            return self._put_run(
                pipe, stored, moved.model_copy(update={"version": stored.version + 1})
            )

        return await self._transaction(transition, key)

    async def _watched_run(self, pipe: Pipeline, key: str, run_id: str) -> Run:
        raw = await pipe.get(key)
        if raw is None:
            raise NotFound("run", run_id)
        return Run.model_validate_json(raw)

    def _put_run(self, pipe: Pipeline, stored: Run, run: Run) -> Run:
        pipe.multi()
        pipe.set(self._key("run", run.id), dump(run))
        if run.status is not stored.status:
            pipe.zrem(self._key("runs", stored.status), run.id)
            pipe.zadd(self._key("runs", run.status), {run.id: run.created_at.timestamp()})
        return run

    async def save_checkpoint(self, run_id: str, data: bytes) -> None:
        await self._redis.set(self._key("checkpoint", run_id), data.hex())

    async def load_checkpoint(self, run_id: str) -> bytes | None:
        raw = await self._redis.get(self._key("checkpoint", run_id))
        return None if raw is None else bytes.fromhex(str(raw))

    # Approvals

    async def create_approval(self, approval: Approval) -> Approval:
        pending = approval.status is ApprovalStatus.PENDING
        indexes = [self._key("approvals", "pending")] if pending else []
        await self._create("approval", approval.id, dump(approval), approval.requested_at, indexes)
        return approval

    async def get_approval(self, approval_id: str) -> Approval:
        raw = await self._redis.get(self._key("approval", approval_id))
        if raw is None:
            raise NotFound("approval", approval_id)
        return Approval.model_validate_json(raw)

    async def list_pending_approvals(self, *, run_id: str | None = None) -> list[Approval]:
        ids = _texts(await self._redis.zrange(self._key("approvals", "pending"), 0, -1))
        if not ids:
            return []
        raws = await self._redis.mget([self._key("approval", i) for i in ids])
        approvals = [Approval.model_validate_json(raw) for raw in raws if raw is not None]
        return [
            a
            for a in approvals
            if a.status is ApprovalStatus.PENDING and (run_id is None or a.run_id == run_id)
        ]

    async def record_decision(self, approval_id: str, decision: Decision) -> DecisionOutcome:
        async def decide(pipe: Pipeline, approval: Approval) -> DecisionOutcome:
            updated, outcome = apply_decision(approval, decision)
            if not isinstance(outcome, AlreadyDecided):
                self._put_approval(pipe, updated)
            return outcome

        return await self._update_approval(approval_id, decide)

    async def close_approval(
        self, approval_id: str, *, status: ApprovalStatus, by: str, at: datetime
    ) -> DecisionOutcome:
        async def close(pipe: Pipeline, approval: Approval) -> DecisionOutcome:
            outcome = closed(approval, status=status, by=by, at=at)
            if isinstance(outcome, Concluded):
                self._put_approval(pipe, outcome.approval)
            return outcome

        return await self._update_approval(approval_id, close)

    async def consume_approval(self, approval_id: str, *, digest: str, at: datetime) -> Approval:
        async def consume(pipe: Pipeline, approval: Approval) -> Approval:
            used = consumed(approval, digest=digest, at=at)
            self._put_approval(pipe, used)
            return used

        return await self._update_approval(approval_id, consume)

    async def _update_approval(
        self, approval_id: str, fn: Callable[[Pipeline, Approval], Awaitable[T]]
    ) -> T:
        key = self._key("approval", approval_id)

        async def update(pipe: Pipeline) -> T:
            raw = await pipe.get(key)
            if raw is None:
                raise NotFound("approval", approval_id)
            return await fn(pipe, Approval.model_validate_json(raw))

        return await self._transaction(update, key)

    def _put_approval(self, pipe: Pipeline, approval: Approval) -> None:
        pipe.multi()
        pipe.set(self._key("approval", approval.id), dump(approval))
        if approval.status is not ApprovalStatus.PENDING:
            pipe.zrem(self._key("approvals", "pending"), approval.id)

    # Signals

    async def publish(self, signal: Signal) -> None:
        await self._redis.publish(self._key("signals"), self._hub.envelope(signal))
        self._hub.deliver(signal)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="airlock-redis-signals")
        await self._listening.wait()
        subscription = self._hub.add()
        try:
            yield subscription
        finally:
            self._hub.remove(subscription)

    async def _listen(self) -> None:
        """Deliver other processes' signals; re-subscribe after a lost connection."""
        failures = 0
        while True:
            pubsub: PubSub = self._redis.pubsub(ignore_subscribe_messages=False)
            try:
                await pubsub.subscribe(self._key("signals"))
                async for message in pubsub.listen():
                    failures = 0
                    self._on_message(message)
            except _RECONNECT_ERRORS:
                failures += 1
                logger.warning(
                    "signal subscription lost; reconnecting", extra={"attempt": failures}
                )
                await asyncio.sleep(_BACKOFF.compute(failures))
            finally:
                await pubsub.aclose()

    def _on_message(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            self._listening.set()
        elif message["type"] == "message":
            signal = self._hub.open_envelope(message["data"])
            if signal is not None:
                self._hub.deliver(signal)

    # Small shared values

    async def claim_idempotency_key(self, key: str, *, ttl_seconds: float) -> bool:
        claimed = await self._redis.set(
            self._key("idem", key), "1", nx=True, px=_milliseconds(ttl_seconds)
        )
        return bool(claimed)

    async def hit_rate_limit(self, key: str, *, window_seconds: float) -> int:
        window = math.floor(self._now().timestamp() / window_seconds)
        slot = self._key("rate", key, str(window))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(slot)
            pipe.pexpire(slot, _milliseconds(window_seconds * 2))
            count, _ = await pipe.execute()
        return int(count)

    async def set_fact(self, scope: str, key: str, value: str, *, ttl_seconds: float) -> None:
        fact_key = self._key("fact", scope, key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(fact_key, value, px=_milliseconds(ttl_seconds))
            pipe.sadd(self._key("facts", scope), key)
            await pipe.execute()

    async def get_facts(self, scope: str) -> dict[str, str]:
        index = self._key("facts", scope)
        names = sorted(_texts(await self._redis.smembers(index)))
        if not names:
            return {}
        values = await self._redis.mget([self._key("fact", scope, name) for name in names])
        gone = [name for name, value in zip(names, values, strict=True) if value is None]
        if gone:
            await self._redis.srem(index, *gone)
        return {
            name: str(value) for name, value in zip(names, values, strict=True) if value is not None
        }

    async def set_halt(self, state: HaltState) -> None:
        await self._redis.set(self._key("halt"), dump(state))

    async def get_halt(self) -> HaltState | None:
        raw = await self._redis.get(self._key("halt"))
        return None if raw is None else HaltState.model_validate_json(raw)

    # Audit

    async def append_audit(self, event: AuditEvent) -> AuditEvent:
        key = self._key("audit", event.run_id)

        async def append(pipe: Pipeline) -> AuditEvent:
            last = await pipe.lindex(key, -1)
            previous = None if last is None else AuditEvent.model_validate_json(last)
            if previous is not None and previous.id == event.id:
                return previous  # a retried append whose first try took effect
            chained = event.chained(
                seq=1 if previous is None else previous.seq + 1,
                prev_hash="" if previous is None else previous.hash,
            )
            pipe.multi()
            pipe.rpush(key, dump(chained))
            return chained

        return await self._transaction(append, key)

    async def list_audit(self, run_id: str) -> list[AuditEvent]:
        raws = _texts(await self._redis.lrange(self._key("audit", run_id), 0, -1))
        return [AuditEvent.model_validate_json(raw) for raw in raws]


def _texts(values: Iterable[Any]) -> list[str]:
    """Redis replies as text (the client decodes responses)."""
    return [str(value) for value in values]


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))
