"""The Store contract for message locations: every backend must pass exactly these tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from agent_core.models import MessageLocation, MessagePurpose, MessageSubject
from agent_core.store import Store, open_store
from agent_core.store.base import dump
from tests.support import TEST_AUDIT_KEY, eventually

APPROVAL, RUN = MessageSubject.APPROVAL, MessageSubject.RUN
KEEP = 3600.0


def at(channel: str, ts: str, purpose: MessagePurpose = MessagePurpose.APPROVAL_REQUEST,
       subject_id: str = "apr_1") -> MessageLocation:  # fmt: skip
    return MessageLocation(
        subject=purpose.subject, subject_id=subject_id, purpose=purpose, channel=channel, ts=ts
    )


async def test_locations_read_back_by_subject_oldest_first(store: Store) -> None:
    request = at("C111", "1700000002.000100")
    copy = at("C0APPROVALS", "1700000001.000200", MessagePurpose.APPROVAL_COPY)
    status = at("C111", "1700000000.000300", MessagePurpose.RUN_STATUS, subject_id="apr_1")
    for location in (request, copy, status):
        await store.remember_message(location, ttl_seconds=KEEP)
    await store.remember_message(at("C111", "1700000009.000000", subject_id="apr_2"),
                                 ttl_seconds=KEEP)  # fmt: skip

    assert await store.messages_of(APPROVAL, "apr_1") == [copy, request]
    # A run and an approval with the same id are different subjects.
    assert await store.messages_of(RUN, "apr_1") == [status]
    assert await store.messages_of(APPROVAL, "apr_none") == []


async def test_the_same_message_remembered_again_replaces_it(store: Store) -> None:
    await store.remember_message(at("D0ANA", "1700000000.000001"), ttl_seconds=KEEP)
    again = at("D0ANA", "1700000000.000001", MessagePurpose.APPROVAL_DM)
    await store.remember_message(again, ttl_seconds=KEEP)
    assert await store.messages_of(APPROVAL, "apr_1") == [again]


async def test_locations_expire(store: Store) -> None:
    await store.remember_message(at("C111", "1700000000.000001"), ttl_seconds=0.2)
    assert len(await store.messages_of(APPROVAL, "apr_1")) == 1

    async def gone() -> bool:
        return await store.messages_of(APPROVAL, "apr_1") == []

    await eventually(gone, timeout=5)


@pytest.mark.parametrize(
    ("channel", "ts"),
    [
        ("C111 1700000000.000001", "1700000000.000001"),  # the old "channel ts" form, spliced
        ("#general", "1700000000.000001"),
        ("https://evil.example", "1700000000.000001"),
        ("c111", "1700000000.000001"),
        ("", "1700000000.000001"),
        ("C111", "1700000000"),
        ("C111", "1700000000.000001 C222"),
        ("C111", "../../chat.delete"),
        ("C111", "1e9.5"),
    ],
)
def test_a_location_that_is_not_a_conversation_and_a_ts_is_refused(channel: str, ts: str) -> None:
    with pytest.raises(ValidationError):
        at(channel, ts)


def test_a_location_whose_purpose_is_about_another_subject_is_refused() -> None:
    with pytest.raises(ValidationError):
        MessageLocation(subject=RUN, subject_id="run_1", purpose=MessagePurpose.APPROVAL_REQUEST,
                        channel="C111", ts="1700000000.000001")  # fmt: skip


async def test_a_forged_stored_location_is_never_returned(store: Store, store_url: str) -> None:
    good = at("C111", "1700000000.000001")
    await store.remember_message(good, ttl_seconds=KEEP)
    valid = good.model_dump(mode="json")
    forged = [
        dump(good).replace('"C111"', '"https://evil.example"'),
        dump(good).replace('"1700000000.000001"', '"1 C0EVIL"'),
        dump(at("C0ELSEWHERE", "1700000000.000002", subject_id="apr_other")),
        dump(good).replace('"approval_request"', '"run_status"'),
        '{"not": "a location"}',
        "not json at all",
        str({**valid, "channel": "C0EVIL", "extra": "field"}).replace("'", '"'),
    ]
    await _write_raw(store_url, "apr_1", forged)
    assert await store.messages_of(APPROVAL, "apr_1") == [good]


async def test_locations_kept_as_session_facts_are_found_after_the_upgrade(
    store_url: str,
) -> None:
    # What the previous version wrote: "channel ts" under session facts.
    old = await open_store(store_url, audit_key=TEST_AUDIT_KEY)
    facts = "slack:approval-message:apr_old"
    await old.set_fact(facts, "at", "C111 1700000000.000001", ttl_seconds=KEEP)
    await old.set_fact(facts, "also", "C0APPROVALS 1700000000.000002", ttl_seconds=KEEP)
    await old.set_fact(facts, "dm:U0ANA:1700000000.000003", "D0ANA 1700000000.000003",
                       ttl_seconds=KEEP)  # fmt: skip
    await old.set_fact(facts, "dm:U0BOB:1", "https://evil.example 1", ttl_seconds=KEEP)
    await old.set_fact(facts, "unknown", "C111 1700000000.000004", ttl_seconds=KEEP)
    await old.set_fact("slack:status-message:run_old", "at", "C111 1700000000.000009",
                       ttl_seconds=KEEP)  # fmt: skip
    await old.close()
    _as_before_the_upgrade(store_url)

    store = await open_store(store_url, audit_key=TEST_AUDIT_KEY)
    try:
        assert await store.messages_of(APPROVAL, "apr_old") == [
            at("C111", "1700000000.000001", subject_id="apr_old"),
            at("C0APPROVALS", "1700000000.000002", MessagePurpose.APPROVAL_COPY, "apr_old"),
            at("D0ANA", "1700000000.000003", MessagePurpose.APPROVAL_DM, "apr_old"),
        ]
        assert await store.messages_of(RUN, "run_old") == [
            at("C111", "1700000000.000009", MessagePurpose.RUN_STATUS, "run_old")
        ]
        # One remembered after the upgrade joins them; none is listed twice.
        later = at("D0BOB", "1700000000.000005", MessagePurpose.APPROVAL_DM, "apr_old")
        await store.remember_message(later, ttl_seconds=KEEP)
        await store.remember_message(at("C111", "1700000000.000001", subject_id="apr_old"),
                                     ttl_seconds=KEEP)  # fmt: skip
        found = await store.messages_of(APPROVAL, "apr_old")
        assert len(found) == 4 and found[-1] == later
    finally:
        await store.close()


def _sqlite_path(store_url: str) -> Path | None:
    parts = urlsplit(store_url)
    return Path(parts.path[1:]) if parts.scheme == "sqlite" else None


def _as_before_the_upgrade(store_url: str) -> None:
    """Make a SQLite file look as the previous version left it (no table, no version)."""
    path = _sqlite_path(store_url)
    if path is None:
        return  # Redis: nothing of the new layout was written
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE message_locations")
        conn.execute("PRAGMA user_version = 0")


async def _write_raw(store_url: str, subject_id: str, bodies: list[str]) -> None:
    """Write ``bodies`` as stored locations of approval ``subject_id``, past every check."""
    path = _sqlite_path(store_url)
    if path is not None:
        with sqlite3.connect(path) as conn:
            conn.executemany(
                "INSERT INTO message_locations VALUES ('approval', ?, ?, ?, ?, 9e12)",
                [(subject_id, f"C{i}", str(i), body) for i, body in enumerate(bodies)],
            )
        return
    parts = urlsplit(store_url)
    prefix = parse_qs(parts.query)["prefix"][0]
    redis = Redis.from_url(parts._replace(query="").geturl(), decode_responses=True)
    try:
        mapping = {f"forged {i}": body for i, body in enumerate(bodies)}
        await redis.hset(f"{prefix}msgs:approval:{subject_id}", mapping=mapping)
    finally:
        await redis.aclose()
