"""Admission rules: daily budgets (workspace, person) and runs per hour, on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent_core.audit.trail import GLOBAL
from agent_core.clock import ManualClock
from agent_core.runs.limits import Admission, LimitReached, Limits, SpendLedger
from agent_core.store import Store, open_store

EVENING = datetime(2026, 3, 10, 20, 48, tzinfo=UTC)


@dataclass(kw_only=True)
class World:
    clock: ManualClock
    store: Store
    ledger: SpendLedger

    def admission(self, **limits: Any) -> Admission:
        return Admission(store=self.store, limits=Limits(**limits), clock=self.clock)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = ManualClock(current=EVENING)
    store = await open_store(f"sqlite:///{tmp_path / 'airlock.db'}", clock=clock)
    try:
        yield World(clock=clock, store=store, ledger=SpendLedger(store=store, clock=clock))
    finally:
        await store.close()


async def test_the_workspace_budget_refuses_everyone_until_midnight_utc(world: World) -> None:
    admission = world.admission(daily_usd=50)
    await world.ledger.charge("U0ALICE", 49.5)
    assert await admission.admit("U0BOB") is None
    await world.ledger.charge("U0ALICE", 0.5)
    for who in ("U0BOB", "local:ops"):
        refused = await admission.admit(who)
        assert refused == LimitReached(limit="daily_budget", used=50.0, allowed=50.0,
                                       resets_at=datetime(2026, 3, 11, tzinfo=UTC))  # fmt: skip
    assert refused is not None
    assert refused.describe(world.clock.now()) == (
        "Daily budget for the workspace is spent ($50.00 of $50.00); "
        "it resets at 00:00 UTC, in 3 h 12 min."
    )
    world.clock.current = datetime(2026, 3, 11, 0, 0, 1, tzinfo=UTC)
    assert await admission.admit("U0BOB") is None
    assert await world.ledger.today() == 0.0


async def test_a_persons_budget_refuses_only_them(world: World) -> None:
    admission = world.admission(user_daily_usd=10, runs_per_user_per_hour=1)
    await world.ledger.charge("U0ALICE", 7.25)
    await world.ledger.charge("U0ALICE", 3.0)
    refused = await admission.admit("U0ALICE")
    assert refused is not None and refused.limit == "user_daily_budget"
    assert refused.describe(world.clock.now()).startswith(
        "Your daily budget is spent ($10.25 of $10.00); it resets at 00:00 UTC"
    )
    assert await admission.admit("U0BOB") is None
    assert await world.ledger.today("U0BOB") == 0.0
    assert await world.ledger.today() == 10.25
    # A budget refusal is not one of the hour's runs: without the budget, she may start one.
    assert await world.admission(runs_per_user_per_hour=1).admit("U0ALICE") is None


async def test_runs_per_hour_are_counted_per_person_and_reset_on_the_hour(world: World) -> None:
    world.clock.current = datetime(2026, 3, 10, 14, 48, 30, tzinfo=UTC)
    admission = world.admission(runs_per_user_per_hour=2)
    assert [await admission.admit("U0ALICE") for _ in range(2)] == [None, None]
    refused = await admission.admit("U0ALICE")
    assert refused is not None
    assert refused.describe(world.clock.now()) == (
        "You have started 2 of 2 runs allowed per hour; it resets at 15:00 UTC, in 12 min."
    )
    assert await admission.admit("U0ALICE") is not None  # asking again does not help
    assert await admission.admit("U0BOB") is None
    world.clock.current = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    assert await admission.admit("U0ALICE") is None


async def test_people_at_the_shell_have_no_per_person_limits(world: World) -> None:
    admission = world.admission(daily_usd=100, user_daily_usd=1, runs_per_user_per_hour=1)
    await world.ledger.charge("local:ops", 5.0)
    assert [await admission.admit("local:ops") for _ in range(3)] == [None, None, None]


async def test_zero_turns_every_limit_off(world: World) -> None:
    await world.ledger.charge("U0ALICE", 1_000_000.0)
    admission = world.admission()
    assert [await admission.admit("U0ALICE") for _ in range(50)] == [None] * 50


async def test_refusals_are_audited_with_who_and_which_limit(world: World) -> None:
    admission = world.admission(runs_per_user_per_hour=1)
    await admission.admit("U0ALICE")
    await admission.admit("U0ALICE")
    [event] = await world.store.list_audit(GLOBAL)
    assert (event.kind, event.actor) == ("run_refused", "U0ALICE")
    assert event.data == {"limit": "runs_per_hour", "used": 1, "allowed": 1}


def test_the_time_left_is_rounded_up_to_the_minute() -> None:
    resets_at = datetime(2026, 3, 11, tzinfo=UTC)
    refusal = LimitReached(limit="daily_budget", used=5, allowed=5, resets_at=resets_at)
    for left, said in [(20, "in 1 min"), (3600, "in 1 h."), (7199, "in 2 h."), (3661, "1 h 2 min")]:
        assert said in refusal.describe(resets_at - timedelta(seconds=left))
