"""A run's lease let go by the save that parks or ends the run: nothing else lets it go, a
renewal that finds it gone meanwhile takes nothing for lost, and a save that does not land
lets go of nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agent_core.errors import VersionConflict
from agent_core.models import Run, RunStatus
from agent_core.runs.claims import Holds, StoreLeases
from agent_core.store import Store, open_store
from tests.support import TEST_AUDIT_KEY


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """Both backends (the package's fixture is SQLite's alone)."""
    opened = await open_store(store_url, audit_key=TEST_AUDIT_KEY)
    try:
        yield opened
    finally:
        await opened.close()


def holds_on(store: Store, lost: list[str]) -> Holds:
    return Holds(book=StoreLeases(store), name="serve-1", lease_seconds=30,
                 on_lost=lost.append, saves_release=True)  # fmt: skip


async def test_a_lease_let_go_by_the_park_is_neither_lost_nor_let_go_again(store: Store) -> None:
    run = await store.create_run(Run(goal="park", requester="U0REQUEST"))
    lost: list[str] = []
    holds = holds_on(store, lost)
    hold = await holds.take(run.id)
    assert hold is not None
    async with store.step(run.id) as step:
        with hold.letting_go() as lease:
            assert lease == hold.lease
            step.release_with_save(lease)
            await store.save_run(run.model_copy(update={"status": RunStatus.PLANNING}))
    assert await store.lease_holder(run.id) is None
    await holds.renew()  # finds the lease gone: it was let go, not lost
    assert lost == [] and not hold.lost
    # Another process takes the run meanwhile (a decision resumed it there): it keeps it.
    theirs = await store.take_lease(run.id, holder="serve-2", ttl_seconds=30)
    assert theirs is not None
    await holds.let_go(hold)
    assert hold.over and run.id not in holds.held
    assert await store.holds_lease(theirs)


async def test_a_park_that_does_not_land_leaves_the_lease_to_be_let_go_as_ever(
    store: Store,
) -> None:
    run = await store.create_run(Run(goal="park", requester="U0REQUEST"))
    lost: list[str] = []
    holds = holds_on(store, lost)
    hold = await holds.take(run.id)
    assert hold is not None
    await store.save_run(run.model_copy(update={"status": RunStatus.PLANNING}))  # elsewhere
    with pytest.raises(VersionConflict):
        async with store.step(run.id) as step:
            with hold.letting_go() as lease:
                assert lease is not None
                step.release_with_save(lease)
                await store.save_run(run.model_copy(update={"status": RunStatus.FAILED}))
    assert not hold.released and await store.holds_lease(hold.lease)
    await holds.renew()
    assert lost == []
    await holds.let_go(hold)
    assert await store.lease_holder(run.id) is None


async def test_a_book_outside_the_store_lets_go_after_the_save(store: Store) -> None:
    run = await store.create_run(Run(goal="park", requester="U0REQUEST"))
    holds = holds_on(store, [])
    holds.saves_release = False
    hold = await holds.take(run.id)
    assert hold is not None
    with hold.letting_go() as lease:
        assert lease is None
    assert not hold.released
    await holds.let_go(hold)
    assert await store.lease_holder(run.id) is None
