"""Redis-only behaviour: riding out a restart, a bounded connection pool under load, and
reading what earlier versions stored."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from agent_core.audit.chain import AuditKey
from agent_core.audit.verify import check_trail
from agent_core.errors import StandInError
from agent_core.models import AuditEvent, Concluded, RunKilled, RunStatus
from agent_core.store import open_store
from agent_core.store._redis_codec import compact, pack, record_value, unpack
from agent_core.store.base import dump
from agent_core.testing.redis_server import RedisServer
from tests.contract.test_store import a_run, a_tool_approval, approve
from tests.support import TEST_AUDIT_KEY, eventually, missing

pytestmark = pytest.mark.processes


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, persisting with an append-only file."""
    try:
        server = RedisServer(appendonly=True)
        server.start()
    except StandInError as error:
        missing(str(error))
        return
    try:
        yield server
    finally:
        server.stop()


async def test_the_store_reconnects_and_keeps_its_data(aof_redis: RedisServer) -> None:
    publisher = await open_store(aof_redis.url)
    listener = await open_store(aof_redis.url)
    try:
        run = await publisher.create_run(a_run())
        async with listener.subscribe() as signals:
            await asyncio.to_thread(aof_redis.restart)

            # The first command after the restart reconnects by itself.
            assert (await listener.get_run(run.id)).status is RunStatus.QUEUED
            await publisher.save_run(run.model_copy(update={"status": RunStatus.PLANNING}))

            # Pub/sub has no replay: keep publishing until the re-subscribed listener hears one.
            async def heard() -> bool:
                await publisher.publish(RunKilled(run_id=run.id, by="U0ADMIN"))
                return not signals.queue.empty()

            await eventually(heard, timeout=10, interval=0.05, load_scaled=True)
            assert await signals.get() == RunKilled(run_id=run.id, by="U0ADMIN")
        assert (await listener.get_run(run.id)).status is RunStatus.PLANNING
    finally:
        await publisher.close()
        await listener.close()


async def test_more_concurrent_operations_than_connections_wait_instead_of_failing(
    redis_store_url: str,
) -> None:
    store = await open_store(redis_store_url, redis_max_connections=4)
    try:
        runs = [a_run() for _ in range(200)]
        await asyncio.gather(*(store.create_run(run) for run in runs))
        loaded = await asyncio.gather(*(store.get_run(run.id) for run in runs))
        assert [r.id for r in loaded] == [r.id for r in runs]
    finally:
        await store.close()


async def test_runs_stored_before_the_requester_index_are_found_by_requester(
    redis_url: str,
) -> None:
    url = f"{redis_url}?prefix=by-requester-{uuid.uuid4().hex[:8]}:"
    store = await open_store(url)
    try:
        runs = [await store.create_run(a_run(requester=f"U0{i % 2}")) for i in range(5)]
        # As an older airlock left them: no requester index and no mark that it was built.
        raw = store._redis  # type: ignore[attr-defined]
        prefix = url.split("prefix=")[1]
        stale = [k async for k in raw.scan_iter(f"{prefix}runs:by:*")]
        stale += [k async for k in raw.scan_iter(f"{prefix}indexed:*")]
        assert stale and await raw.delete(*stale) == len(stale)
    finally:
        await store.close()
    reopened = await open_store(url)
    try:
        found = await reopened.list_runs(requester="U00", newest_first=True)
        assert [r.id for r in found] == [r.id for r in reversed(runs[0::2])]
    finally:
        await reopened.close()


def _whole(record: BaseModel) -> str:
    return dump(record)


def _lean(record: BaseModel) -> str:
    # As 20b5ee7 wrote records: JSON without defaults and Nones, union tags kept, never packed.
    return compact(record)


# How earlier versions wrote each value, reproduced here so that they stay readable whatever
# the store writes now: (record, checkpoint, the scope's fact names in a set rather than
# a sorted set).
_EARLIER_FORMS: dict[str, tuple[Callable[[BaseModel], str], Callable[[bytes], str], bool]] = {
    # Before 15c8a1b: records whole, checkpoints in hex, fact names in a set.
    "whole": (_whole, bytes.hex, True),
    # 20b5ee7: records lean JSON, checkpoints as "j" and their text, fact names sorted.
    "lean": (_lean, lambda data: "j" + data.decode(), False),
}


@pytest.mark.parametrize("form", sorted(_EARLIER_FORMS))
async def test_records_in_the_forms_earlier_versions_wrote_are_read_and_extended(
    redis_url: str, form: str
) -> None:
    record_form, checkpoint_form, names_in_a_set = _EARLIER_FORMS[form]
    prefix = f"before-{uuid.uuid4().hex[:8]}:"
    url = f"{redis_url}?prefix={prefix}"
    store = await open_store(url, audit_key=TEST_AUDIT_KEY)
    try:
        run = await store.create_run(a_run())
        checkpoint = b'{"conversations":{"s1":[]},"journal":true}'
        run = await store.save_run(run, checkpoint=checkpoint)
        approval = await store.create_approval(a_tool_approval(run.id))
        for kind in ("run_claimed", "llm_call"):
            await store.append_audit(AuditEvent(run_id=run.id, kind=kind, actor="airlock"))
        await store.set_fact("approval-asked:" + approval.id, "at", "then", ttl_seconds=600)
        trail = await store.read_audit(run.id)
        assert trail.head is not None
    finally:
        await store.close()

    # Rewrite every value as that version wrote it.
    raw = Redis.from_url(redis_url, decode_responses=True)
    try:
        scope = "approval-asked:" + approval.id
        async with raw.pipeline(transaction=True) as pipe:
            pipe.set(f"{prefix}run:{run.id}", record_form(run))
            pipe.set(f"{prefix}approval:{approval.id}", record_form(approval))
            pipe.set(f"{prefix}checkpoint:{run.id}", checkpoint_form(checkpoint))
            pipe.delete(f"{prefix}audit:{run.id}")
            pipe.rpush(f"{prefix}audit:{run.id}", *(record_form(e) for e in trail.events))
            pipe.set(f"{prefix}audithead:{run.id}", record_form(trail.head))
            if names_in_a_set:
                pipe.delete(f"{prefix}factnames:{scope}")
                pipe.sadd(f"{prefix}facts:{scope}", "at")
            await pipe.execute()
        # Really the old forms, not what this version writes.
        assert await raw.get(f"{prefix}run:{run.id}") != record_value(run)
        assert (await raw.lindex(f"{prefix}audit:{run.id}", 0)).startswith("{")
    finally:
        await raw.aclose()

    reopened = await open_store(url, audit_key=TEST_AUDIT_KEY)
    try:
        assert await reopened.get_run(run.id) == run
        assert await reopened.load_checkpoint(run.id) == checkpoint
        assert await reopened.get_approval(approval.id) == approval
        assert [a.id for a in await reopened.list_pending_approvals()] == [approval.id]
        assert await reopened.read_audit(run.id) == trail
        assert await reopened.get_facts(scope) == {"at": "then"}

        # Written over in the new form, and still checked and chained.
        moved = await reopened.save_run(
            run.model_copy(update={"status": RunStatus.PLANNING}), checkpoint=checkpoint
        )
        assert (await reopened.get_run(run.id)).status is RunStatus.PLANNING
        assert await reopened.load_checkpoint(run.id) == checkpoint
        assert moved.version == run.version + 1
        outcome = await reopened.record_decision(approval.id, approve("U0ADMIN", admin=True))
        assert isinstance(outcome, Concluded)
        await reopened.append_audit(AuditEvent(run_id=run.id, kind="tool_call", actor="airlock"))
        extended = await reopened.read_audit(run.id)
        assert [e.seq for e in extended.events] == [1, 2, 3]
        assert extended.events[:2] == trail.events
        assert not check_trail(extended, AuditKey.from_text(TEST_AUDIT_KEY)).findings
        async with Redis.from_url(redis_url, decode_responses=True) as raw:
            # What was written over is in this version's form: packed, beside the old events.
            for key in (f"run:{run.id}", f"approval:{approval.id}", f"audithead:{run.id}"):
                assert (await raw.get(prefix + key)).startswith("p")
            stored = await raw.lrange(f"{prefix}audit:{run.id}", 0, -1)
            assert [value[0] for value in stored] == ["{", "{", "p"]
        await reopened.set_fact(scope, "also", "now", ttl_seconds=600)
        assert await reopened.get_facts(scope) == {"at": "then", "also": "now"}
    finally:
        await reopened.close()


async def test_a_packed_value_an_attacker_rewrote_is_caught_like_any_other(
    redis_url: str,
) -> None:
    # Values are packed against a dictionary in the public code: anyone can unpack, edit and
    # pack them again. What the seals cover is the JSON, so the edit shows as before; and a
    # packed value that does not unpack is unreadable, as any garbage is.
    prefix = f"packed-{uuid.uuid4().hex[:8]}:"
    store = await open_store(f"{redis_url}?prefix={prefix}", audit_key=TEST_AUDIT_KEY)
    key = AuditKey.from_text(TEST_AUDIT_KEY)
    try:
        run = await store.create_run(a_run())
        for kind in ("run_claimed", "llm_call", "tool_call"):
            await store.append_audit(AuditEvent(run_id=run.id, kind=kind, actor="airlock"))
        events = f"{prefix}audit:{run.id}"
        async with Redis.from_url(redis_url, decode_responses=True) as raw:
            first = await raw.lindex(events, 0)
            assert first.startswith("p")
            edited = unpack(first).replace('"kind":"run_claimed"', '"kind":"run_refused"')
            await raw.lset(events, 0, pack(edited))
            await raw.lset(events, 1, "p" + "A" * 40)
        trail = await store.read_audit(run.id)
        assert trail.unreadable == ("the event stored in position 2",)
        assert trail.events[0].kind == "run_refused"
        texts = [finding.text for finding in check_trail(trail, key).findings]
        assert texts == [
            "the event stored in position 2 is unreadable: it was not written by airlock",
            f"event 1 ({trail.events[0].id}, run_refused) was edited or rewritten without the key:"
            " its seal does not match",
            "event 2 is missing (deleted)",
        ]
    finally:
        await store.close()
