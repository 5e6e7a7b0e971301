"""The shared Store: Redis, for many front ends and workers at once.

Records are JSON (their defaults left out, packed when shorter: ``_redis_codec``); sorted sets index
runs by status and approvals by state. Every read-modify-write (a status compare-and-set,
a decision, an audit append) is an optimistic WATCH/MULTI transaction, retried on
conflict, so the same pure rules as the SQLite store decide what is written. Signals
travel over Redis pub/sub; the listener re-subscribes after a lost connection.

This module maps each Store operation to Redis commands. The key layout and the
script that creates a record are in ``_redis_keys``, the connection pool and the
retried transactions in ``_redis_client``, the signal listener in
``_redis_signals``, the audit trails in ``_redis_audit``, the tool-call journal in
``_redis_journal`` and the message locations in ``_redis_messages``.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from agent_core.approvals.rule import apply_decision
from agent_core.audit.chain import UNKEYED, AuditKey, HeadCache
from agent_core.clock import Clock, SystemClock
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
from agent_core.store._clean import CleanValues
from agent_core.store._redis_audit import RedisAudit
from agent_core.store._redis_client import connect, milliseconds, texts, transaction
from agent_core.store._redis_codec import checkpoint_of, checkpoint_value, record_value, unpack
from agent_core.store._redis_journal import RedisJournal
from agent_core.store._redis_keys import ADD_SPEND, CREATE, SET_FACT, KeyLayout
from agent_core.store._redis_memories import RedisMemories
from agent_core.store._redis_messages import RedisMessages
from agent_core.store._redis_signals import SignalListener
from agent_core.store.base import (
    Lease,
    SignalHub,
    Subscription,
    checked_save,
    closed,
    consumed,
    dump,
    escalated,
    masked_run,
    masked_save,
)
from agent_core.store.run_queue import RedisRunQueue
from agent_core.store.steps import Held, Step, held, holding

__all__ = ["RedisStore"]

_PLAIN = re.compile(r"[A-Za-z0-9_-]+")

T = TypeVar("T")


class RedisStore(RedisMemories, RedisAudit, RedisJournal, RedisMessages):
    """A :class:`~agent_core.store.base.Store` on a Redis server, shared by processes.

    ``audit_key`` seals the audit trail (:mod:`agent_core.audit.chain`); it stays in this
    process, never in Redis. Without one, trails are sealed unkeyed.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "airlock:",
        clock: Clock | None = None,
        audit_key: AuditKey = UNKEYED,
    ) -> None:
        self._redis = redis
        self._key = KeyLayout(prefix)
        self._clock = clock or SystemClock()
        self._audit_key = audit_key
        self._audit_heads = HeadCache()
        self._clean = CleanValues()
        self._hub = SignalHub()
        self._listener = SignalListener(redis, self._key("signals"), self._hub)
        self._leases = RedisRunQueue(redis, self._key)
        self._create_script = redis.register_script(CREATE)
        self._add_spend_script = redis.register_script(ADD_SPEND)
        self._set_fact_script = redis.register_script(SET_FACT)
        self._memory_scripts()
        self._audit_scripts()

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        prefix: str = "airlock:",
        clock: Clock | None = None,
        max_connections: int = 64,
        connect_timeout: float = 5.0,
        audit_key: AuditKey = UNKEYED,
    ) -> RedisStore:
        """Connect to the Redis server at ``url``.

        The pool blocks (up to ``connect_timeout``) when all ``max_connections``
        are busy instead of failing at once, which redis-py 8's default pool does.
        """
        redis = connect(url, max_connections=max_connections, connect_timeout=connect_timeout)
        store = cls(redis, prefix=prefix, clock=clock, audit_key=audit_key)
        await store.ping()
        await store._index_requesters()
        return store

    def _now(self) -> datetime:
        return self._clock.now()

    def run_queue(self) -> RedisRunQueue:
        """The run queue and leases on this store's server and keys (workers use it)."""
        return RedisRunQueue(self._redis, self._key)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._listener.close()
        await self._redis.aclose(close_connection_pool=True)

    # Runs

    async def create_run(self, run: Run) -> Run:
        run = masked_run(run, clean=self._clean)
        indexes = [self._key("runs"), self._key("runs", run.status), self._by(run.requester)]
        await self._create("run", run.id, record_value(run), run.created_at, indexes)
        return run

    def _by(self, requester: str) -> str:
        """The index of one requester's runs by creation (runs move between statuses, never
        between requesters, so it is written once)."""
        return self._key("runs", "by", requester)

    async def _index_requesters(self) -> None:
        """Index by requester the runs stored before that index existed (once per store)."""
        # Not under runs*: every key there is an index of run ids (a sorted set).
        done = self._key("indexed", "runs-by-requester")
        if await self._redis.exists(done):
            return
        start = 0
        while ids := texts(await self._redis.zrange(self._key("runs"), start, start + 999)):
            raws = await self._redis.mget([self._key("run", run_id) for run_id in ids])
            pipe = self._redis.pipeline(transaction=False)
            for raw in raws:
                if raw is None:
                    continue  # deleted since it was listed
                run = _run(raw)
                pipe.zadd(self._by(run.requester), {run.id: run.created_at.timestamp()})
            await pipe.execute()
            start += len(ids)
        await self._redis.set(done, "1")

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
        return _run(raw)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        requester: str | None = None,
        newest_first: bool = False,
        limit: int = 100,
    ) -> list[Run]:
        if requester is None:
            index = self._key("runs") if status is None else self._key("runs", status)
            return await self._runs_in(index, 0, limit, newest_first)
        if status is None:
            return await self._runs_in(self._by(requester), 0, limit, newest_first)
        # Someone's runs in one status: their own index, read a page at a time.
        found: list[Run] = []
        start = 0
        while len(found) < limit:
            page = await self._runs_in(self._by(requester), start, 500, newest_first)
            if not page:
                break
            found += [run for run in page if run.status == status]
            start += 500
        return found[:limit]

    async def _runs_in(self, index: str, start: int, count: int, newest_first: bool) -> list[Run]:
        ids = texts(await self._redis.zrange(index, start, start + count - 1, desc=newest_first))
        if not ids:
            return []
        raws = await self._redis.mget([self._key("run", run_id) for run_id in ids])
        return [_run(raw) for raw in raws if raw is not None]

    async def save_run(self, run: Run, *, checkpoint: bytes | None = None) -> Run:
        step = held(run.id)
        if step:
            saved = await self._commit_step(step.take(), run, checkpoint)
            assert saved is not None
            return saved
        return await self._save_run(run, checkpoint)

    def step(self, run_id: str) -> AbstractAsyncContextManager[Step]:
        return holding(run_id, self._commit_step)

    async def _commit_step(
        self, step: Held, run: Run | None, checkpoint: bytes | None
    ) -> Run | None:
        await self._commit_held(step)
        if run is None:
            return None
        saved = await self._save_run(run, checkpoint, release=step.release)
        for event in step.with_save:  # after the save, as on SQLite; a crash between loses it
            await self._append_audit(event)
        return saved

    async def _commit_held(self, step: Held) -> None:
        """The held writes, journal first, then the events in order, then the facts. Not one
        transaction here: an audit append is a compare-and-set script of its own (a crash
        between them leaves the journal ahead of the trail, which is what recovery reads). A
        held approval use goes in one transaction with the journal records: both land, or
        neither."""
        use = step.use
        if use is not None:

            async def consume(pipe: Pipeline, approval: Approval) -> None:
                self._put_approval(pipe, consumed(approval, digest=use.digest, at=use.at))
                for record in step.tool_calls:
                    self._put_tool_call(pipe, record)

            await self._update_approval(use.approval_id, consume)
        elif step.tool_calls:
            async with self._redis.pipeline(transaction=True) as pipe:
                for record in step.tool_calls:
                    self._put_tool_call(pipe, record)
                await pipe.execute()
        for event in step.events:
            await self._append_audit(event)
        for fact in step.facts:
            await self.set_fact(fact.scope, fact.key, fact.value, ttl_seconds=fact.ttl_seconds)

    async def _save_run(
        self, run: Run, checkpoint: bytes | None, *, release: Lease | None = None
    ) -> Run:
        """Save ``run`` (compare-and-set); with ``release``, let go of that lease in the same
        ``MULTI`` if it is still held (watched with the run: it is read, then let go)."""
        run, checkpoint = masked_save(run, checkpoint, clean=self._clean)
        key = self._key("run", run.id)
        watched = [key] if release is None else [key, self._leases.lease_key(release)]

        async def save(pipe: Pipeline) -> Run:
            ours = release is not None and await self._leases.holds_in(pipe, release)
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
                pipe.set(self._key("checkpoint", run.id), checkpoint_value(checkpoint))
            if ours and release is not None:
                self._leases.finish_in(pipe, release)
            return saved

        return await transaction(self._redis, save, *watched)

    async def _watched_run(self, pipe: Pipeline, key: str, run_id: str) -> Run:
        raw = await pipe.get(key)
        if raw is None:
            raise NotFound("run", run_id)
        return _run(raw)

    def _put_run(self, pipe: Pipeline, stored: Run, run: Run) -> Run:
        pipe.multi()
        pipe.set(self._key("run", run.id), record_value(run))
        if run.status is not stored.status:
            pipe.zrem(self._key("runs", stored.status), run.id)
            pipe.zadd(self._key("runs", run.status), {run.id: run.created_at.timestamp()})
        return run

    async def load_checkpoint(self, run_id: str) -> bytes | None:
        raw = await self._redis.get(self._key("checkpoint", run_id))
        return None if raw is None else checkpoint_of(str(raw))

    # Approvals

    async def create_approval(
        self, approval: Approval, *, recording: AuditEvent | None = None
    ) -> Approval:
        pending = approval.status is ApprovalStatus.PENDING
        indexes = [self._key("approvals", "pending")] if pending else []
        await self._create(
            "approval", approval.id, record_value(approval), approval.requested_at, indexes
        )
        if recording is not None:  # after it, as a step's events follow its journal records
            await self._append_audit(recording)
        return approval

    async def get_approval(self, approval_id: str) -> Approval:
        raw = await self._redis.get(self._key("approval", approval_id))
        if raw is None:
            raise NotFound("approval", approval_id)
        return _approval(raw)

    async def list_pending_approvals(self, *, run_id: str | None = None) -> list[Approval]:
        ids = texts(await self._redis.zrange(self._key("approvals", "pending"), 0, -1))
        if not ids:
            return []
        raws = await self._redis.mget([self._key("approval", i) for i in ids])
        bodies = [unpack(raw) for raw in raws if raw is not None]
        if run_id is not None and _PLAIN.fullmatch(run_id):
            # Called for one run among every pending request (by each parked run's host and
            # each lease's sweep): only a body that names the run can be its request, so only
            # those are parsed. An id of letters, digits, "_" and "-" is written as it is.
            bodies = [body for body in bodies if run_id in body]
        approvals = [Approval.model_validate_json(body) for body in bodies]
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

    async def escalate_approval(
        self, approval_id: str, *, hop: int, approvers: list[str], deadline: datetime | None
    ) -> Approval | None:
        async def escalate(pipe: Pipeline, approval: Approval) -> Approval | None:
            moved = escalated(approval, hop=hop, approvers=approvers, deadline=deadline)
            if moved is not None:
                self._put_approval(pipe, moved)
            return moved

        return await self._update_approval(approval_id, escalate)

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
            return await fn(pipe, _approval(raw))

        return await transaction(self._redis, update, key)

    def _put_approval(self, pipe: Pipeline, approval: Approval) -> None:
        pipe.multi()
        pipe.set(self._key("approval", approval.id), record_value(approval))
        if approval.status is not ApprovalStatus.PENDING:
            pipe.zrem(self._key("approvals", "pending"), approval.id)

    # Signals

    async def publish(self, signal: Signal) -> None:
        # Subscribers here learn at once; what a signal announces is already committed.
        self._hub.deliver(signal)
        await self._redis.publish(self._key("signals"), self._hub.envelope(signal))

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        await self._listener.start()
        async with self._hub.subscription() as subscription:
            yield subscription

    # Small shared values

    # Leases: the run queue's, taken without a queue entry (a worker sees them as held)

    async def take_lease(self, run_id: str, *, holder: str, ttl_seconds: float) -> Lease | None:
        return await self._leases.acquire(run_id, worker=holder, entry="", ttl_seconds=ttl_seconds)

    async def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> bool:
        return await self._leases.renew(lease, ttl_seconds=ttl_seconds)

    async def holds_lease(self, lease: Lease) -> bool:
        return await self._leases.holds(lease)

    async def lease_holder(self, run_id: str) -> tuple[str, float] | None:
        return await self._leases.held_for(run_id)

    async def release_lease(self, lease: Lease) -> bool:
        return await self._leases.finish(lease)

    async def claim_idempotency_key(self, key: str, *, ttl_seconds: float) -> bool:
        claimed = await self._redis.set(
            self._key("idem", key), "1", nx=True, px=milliseconds(ttl_seconds)
        )
        return bool(claimed)

    async def hit_rate_limit(self, key: str, *, window_seconds: float) -> int:
        window = math.floor(self._now().timestamp() / window_seconds)
        slot = self._key("rate", key, str(window))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(slot)
            pipe.pexpire(slot, milliseconds(window_seconds * 2))
            count, _ = await pipe.execute()
        return int(count)

    async def add_spend(
        self, keys: Sequence[str], usd: float, *, ttl_seconds: float
    ) -> list[float]:
        totals = await self._add_spend_script(
            keys=[self._key("spend", key) for key in keys],
            args=[repr(usd), milliseconds(ttl_seconds)],
        )
        return [float(total) for total in totals]

    async def get_spend(self, key: str) -> float:
        total = await self._redis.get(self._key("spend", key))
        return 0.0 if total is None else float(total)

    async def set_fact(self, scope: str, key: str, value: str, *, ttl_seconds: float) -> None:
        await self._set_fact_script(
            keys=[self._key("fact", scope, key), self._key("factnames", scope)],
            args=[value, milliseconds(ttl_seconds), key],
        )

    async def get_facts(self, scope: str) -> dict[str, str]:
        index, legacy = self._key("factnames", scope), self._key("facts", scope)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrange(index, 0, -1)
            pipe.smembers(legacy)  # the index as versions before wrote it (a set)
            listed, listed_before = await pipe.execute()
        names = sorted({*texts(listed), *texts(listed_before)})
        if not names:
            return {}
        values = await self._redis.mget([self._key("fact", scope, name) for name in names])
        gone = [name for name, value in zip(names, values, strict=True) if value is None]
        if gone:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrem(index, *gone)
                pipe.srem(legacy, *gone)
                await pipe.execute()
        return {
            name: str(value) for name, value in zip(names, values, strict=True) if value is not None
        }

    async def set_halt(self, state: HaltState) -> None:
        await self._redis.set(self._key("halt"), dump(state))

    async def get_halt(self) -> HaltState | None:
        raw = await self._redis.get(self._key("halt"))
        return None if raw is None else HaltState.model_validate_json(raw)


def _run(raw: str | bytes) -> Run:
    """The run a Redis value holds, in any form this store has written."""
    return Run.model_validate_json(unpack(raw))


def _approval(raw: str | bytes) -> Approval:
    """The approval a Redis value holds, in any form this store has written."""
    return Approval.model_validate_json(unpack(raw))
