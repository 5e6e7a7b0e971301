"""Long-term memory with the real model and real FAISS: relevance, scopes, dedup, expiry, files."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent_core.clock import ManualClock
from agent_core.memory.embedder import Embedder
from agent_core.memory.index import VectorIndex
from agent_core.memory.longterm import LongTermMemory
from agent_core.memory.records import WORKSPACE, MemoryType, readable_scopes
from agent_core.store import Store, open_store

CHANNEL = "channel:C0OPS"
OTHER = "channel:C0OTHER"

TEAMS = ["finance", "design", "legal", "people", "facilities", "marketing", "sales", "support"]
TOPICS = [
    "orders lunch from the noodle place on Fridays",
    "keeps the holiday calendar in a shared spreadsheet",
    "meets in the blue room on Tuesdays",
    "prefers video calls before noon",
    "celebrates birthdays with a cake on the first Monday",
    "has its printer on the third floor",
    "parks bicycles in the basement",
    "plans the offsite for early spring",
    "sends the newsletter on Thursdays",
    "runs a book club about history novels",
    "waters the plants near the kitchen",
    "books travel through the agency portal",
    "uses the quiet room for interviews",
    "tracks expenses at the end of each month",
    "has a coffee machine that needs descaling",
    "organises a charity run in autumn",
    "keeps spare umbrellas by the door",
    "likes jazz playing in the afternoon",
    "reviews contracts every Wednesday",
    "hosts a quiz night once a quarter",
    "orders new chairs through the office manager",
    "shares photos of pets in its channel",
    "takes a long lunch on the last Friday",
    "posts the rota for cleaning the fridge",
    "runs a language exchange over coffee",
]


def distractors(n: int) -> list[str]:
    pairs = itertools.product(TEAMS, TOPICS)
    return [f"The {team} team {topic}." for team, topic in itertools.islice(pairs, n)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path / 'airlock.db'}")
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def memory_of(
    store: Store, embedder: Embedder, folder: Path, clock: ManualClock, **changes: object
) -> LongTermMemory:
    return LongTermMemory(
        store=store,
        embedder=embedder,
        folder=folder,
        clock=clock,
        save_delay=0,
        **changes,  # type: ignore[arg-type]
    )


@pytest.fixture
def memory(store: Store, embedder: Embedder, tmp_path: Path, clock: ManualClock) -> LongTermMemory:
    return memory_of(store, embedder, tmp_path / "memory", clock)


async def test_a_related_question_finds_the_memory_among_200_distractors(
    memory: LongTermMemory,
) -> None:
    for fact in distractors(200):
        await memory.remember(scope=CHANNEL, content=fact, created_by="U0ANA")
    wanted = await memory.remember(
        scope=CHANNEL, content="staging deploys go through the deploy-web MCP tool",
        created_by="U0ANA", memory_type=MemoryType.PROCEDURAL,
    )  # fmt: skip
    found = await memory.recall(scopes=[CHANNEL], query="how do we deploy the web app", k=3)
    assert found[0].memory.id == wanted.memory.id
    assert found[0].similarity > 0.4
    again = await memory.store.get_memory(wanted.memory.id)
    assert again.access_count == 1 and again.last_accessed is not None


async def test_a_memory_is_only_found_in_its_own_scope(memory: LongTermMemory) -> None:
    secret = "the launch code for project kestrel is 7-4-1"
    await memory.remember(scope="channel:C0PRIVATE", content=secret, created_by="U0ANA")
    await memory.remember(scope="user:U0BOB", content="Bob's deploy key lives in vault path kv/bob",
                          created_by="U0BOB")  # fmt: skip
    await memory.remember(scope=WORKSPACE, content="kestrel is the code name of the new app",
                          created_by="U0ADMIN")  # fmt: skip
    elsewhere = await memory.recall(scopes=readable_scopes(OTHER), query="kestrel launch code")
    assert [hit.memory.content for hit in elsewhere] == ["kestrel is the code name of the new app"]
    not_bob = await memory.recall(scopes=readable_scopes("user:U0ANA"), query="bob deploy key")
    assert all("vault" not in hit.memory.content for hit in not_bob)
    there = await memory.recall(scopes=readable_scopes("channel:C0PRIVATE"), query="launch code")
    assert there[0].memory.content == secret


async def test_a_near_duplicate_is_merged_not_stored_twice(memory: LongTermMemory) -> None:
    first = await memory.remember(scope=CHANNEL, content="Staging deploys go through deploy-web.",
                                  created_by="U0ANA", importance=0.4)  # fmt: skip
    second = await memory.remember(scope=CHANNEL, content="staging deploys go through deploy-web",
                                   created_by="U0BOB", importance=0.9)  # fmt: skip
    assert second.merged and second.replaced is not None
    assert second.replaced.id == first.memory.id
    assert second.memory.importance == 0.9 and second.memory.data["merged"] == 2
    assert await memory.store.memory_counts() == {CHANNEL: 1}
    newer = await memory.remember(scope=CHANNEL, content="prod has 5 replicas", created_by="U0ANA")
    assert not newer.merged
    update = await memory.remember(scope=CHANNEL, content="prod has 6 replicas", created_by="U0BOB")
    assert update.replaced is not None and update.replaced.id == newer.memory.id
    found = await memory.recall(scopes=[CHANNEL], query="how many replicas does prod have")
    assert [hit.memory.content for hit in found][:1] == ["prod has 6 replicas"]
    other_scope = await memory.remember(
        scope=OTHER, content="staging deploys go through deploy-web", created_by="U0BOB"
    )
    assert not other_scope.merged


async def test_events_are_never_merged(memory: LongTermMemory) -> None:
    for _ in range(2):
        await memory.remember(scope=CHANNEL, content="rejected run_command on prod by U0ANA",
                              created_by="U0ANA", memory_type=MemoryType.EPISODIC)  # fmt: skip
    assert await memory.store.memory_counts() == {CHANNEL: 2}


async def test_an_expired_memory_is_not_recalled(
    memory: LongTermMemory, clock: ManualClock
) -> None:
    in_an_hour = clock.now() + timedelta(hours=1)
    await memory.remember(scope=CHANNEL, content="the staging database is being migrated today",
                          created_by="U0ANA", expires_at=in_an_hour)  # fmt: skip
    query = "is the staging database migration happening"
    assert len(await memory.recall(scopes=[CHANNEL], query=query)) == 1
    clock.advance(2 * 3600)
    assert await memory.recall(scopes=[CHANNEL], query=query) == []


async def test_recency_and_importance_break_ties_between_equal_matches(
    memory: LongTermMemory, clock: ManualClock
) -> None:
    old = await memory.remember(scope=CHANNEL, content="the on-call phone number changed",
                                created_by="U0ANA", memory_type=MemoryType.EPISODIC)  # fmt: skip
    clock.advance(90 * 86400)
    new = await memory.remember(scope=CHANNEL, content="the on-call phone number changed",
                                created_by="U0ANA", memory_type=MemoryType.EPISODIC)  # fmt: skip
    found = await memory.recall(scopes=[CHANNEL], query="on-call phone number", k=2)
    assert [hit.memory.id for hit in found] == [new.memory.id, old.memory.id]
    assert found[0].score > found[1].score


async def test_the_index_survives_a_restart_without_embedding_again(
    store: Store, embedder: Embedder, tmp_path: Path, clock: ManualClock
) -> None:
    folder = tmp_path / "memory"
    first = memory_of(store, embedder, folder, clock)
    for fact in distractors(20):
        await first.remember(scope=CHANNEL, content=fact, created_by="U0ANA")
    await first.close()
    [path] = folder.glob("*.faiss")
    saved = VectorIndex.load(path, dim=embedder.dim)
    assert len(saved) == 20 and saved.synced == 20
    second = memory_of(store, embedder, folder, clock)
    found = await second.recall(scopes=[CHANNEL], query="who meets in the blue room")
    assert "blue room" in found[0].memory.content


async def test_a_corrupt_or_missing_index_is_rebuilt_from_the_store(
    store: Store, embedder: Embedder, tmp_path: Path, clock: ManualClock
) -> None:
    folder = tmp_path / "memory"
    first = memory_of(store, embedder, folder, clock)
    await first.remember(scope=CHANNEL, content="the VPN gateway is vpn2.example.org",
                         created_by="U0ANA")  # fmt: skip
    await first.close()
    [path] = folder.glob("*.faiss")
    path.write_bytes(path.read_bytes()[:40] + b"garbage" * 10)
    rebuilt = memory_of(store, embedder, folder, clock)
    found = await rebuilt.recall(scopes=[CHANNEL], query="which host is the VPN gateway")
    assert found[0].memory.content == "the VPN gateway is vpn2.example.org"
    await rebuilt.close()
    assert VectorIndex.load(path, dim=embedder.dim).synced == found[0].memory.seq
    path.unlink()
    again = memory_of(store, embedder, folder, clock)
    assert len(await again.recall(scopes=[CHANNEL], query="VPN gateway host")) == 1


async def test_another_replica_finds_what_one_remembered_and_not_what_it_forgot(
    store: Store, embedder: Embedder, tmp_path: Path, clock: ManualClock
) -> None:
    one = memory_of(store, embedder, tmp_path / "one", clock)
    two = memory_of(store, embedder, tmp_path / "two", clock)
    assert await two.recall(scopes=[CHANNEL], query="release train") == []
    kept = await one.remember(scope=CHANNEL, content="the release train leaves every Tuesday",
                              created_by="U0ANA")  # fmt: skip
    found = await two.recall(scopes=[CHANNEL], query="when does the release train leave")
    assert [hit.memory.id for hit in found] == [kept.memory.id]
    await one.forget(kept.memory.id)
    assert await two.recall(scopes=[CHANNEL], query="when does the release train leave") == []


async def test_rebuild_reindexes_every_scope(memory: LongTermMemory) -> None:
    await memory.remember(scope=CHANNEL, content="alpha runs on port 8080", created_by="U0ANA")
    await memory.remember(scope=OTHER, content="beta runs on port 9090", created_by="U0ANA")
    assert await memory.rebuild() == {CHANNEL: 1, OTHER: 1}
    found = await memory.recall(scopes=[OTHER], query="which port does beta use")
    assert found[0].memory.content == "beta runs on port 9090"


async def test_replicas_sharing_redis_see_each_others_memories(
    redis_store_url: str, embedder: Embedder, tmp_path: Path, clock: ManualClock
) -> None:
    one_store = await open_store(redis_store_url)
    two_store = await open_store(redis_store_url)
    try:
        one = memory_of(one_store, embedder, tmp_path / "one", clock)
        two = memory_of(two_store, embedder, tmp_path / "two", clock)
        kept = await one.remember(scope=CHANNEL, content="the release train leaves every Tuesday",
                                  created_by="U0ANA")  # fmt: skip
        found = await two.recall(scopes=[CHANNEL], query="when does the release train leave")
        assert [hit.memory.id for hit in found] == [kept.memory.id]
        assert await two.recall(scopes=[OTHER], query="when does the release train leave") == []
        again_said = "The release train leaves every Tuesday."
        replaced = await two.remember(scope=CHANNEL, created_by="U0BOB", content=again_said)
        assert replaced.replaced is not None and replaced.replaced.id == kept.memory.id
        again = await one.recall(scopes=[CHANNEL], query="when does the release train leave")
        assert [hit.memory.id for hit in again] == [replaced.memory.id]
        await one.close()
        await two.close()
    finally:
        await one_store.close()
        await two_store.close()
