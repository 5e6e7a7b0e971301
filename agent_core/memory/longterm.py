"""Long-term memory: records in the Store, vectors in one FAISS index per scope.

One index per scope means a search can only ever return the scope's own vectors:
scoping is structural, not a filter someone could forget. Each index is a cache of
the Store: it remembers the highest sequence number it holds and catches up by
embedding the memories added after it (by this process or any other), so a missing,
stale or corrupt index file costs time, never data. Deleted memories may linger in
another process's index; every hit is looked up in the Store and dropped if gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from agent_core.clock import Clock, SystemClock
from agent_core.errors import IndexCorrupt, NotFound
from agent_core.memory.embedder import Embedder
from agent_core.memory.index import VectorIndex
from agent_core.memory.records import Memory, MemoryType
from agent_core.models import JsonValue
from agent_core.secrets import redact, redact_value
from agent_core.store import MemoryRecords

__all__ = ["LongTermMemory", "RecallWeights", "Recalled", "Remembered"]

logger = logging.getLogger(__name__)

_SYNC_BATCH = 512


@dataclass(kw_only=True, frozen=True)
class RecallWeights:
    """How retrieval blends similarity with importance and recency (settings)."""

    similarity: float = 0.7
    importance: float = 0.15
    recency: float = 0.15
    recency_half_life_days: float = 30.0
    """Age at which a memory's recency counts half."""
    min_similarity: float = 0.3
    """Below this cosine a memory is not relevant, whatever its importance."""


@dataclass(kw_only=True, frozen=True)
class Recalled:
    """A memory found for a query, with its scores."""

    memory: Memory
    similarity: float
    """Cosine similarity to the query."""
    score: float
    """The blended rank score."""


@dataclass(kw_only=True, frozen=True)
class Remembered:
    """What :meth:`LongTermMemory.remember` did."""

    memory: Memory
    replaced: Memory | None = None
    """The near-duplicate this memory took the place of, if there was one."""

    @property
    def merged(self) -> bool:
        """True when a near-duplicate was replaced rather than a memory added beside it."""
        return self.replaced is not None


@dataclass(kw_only=True)
class LongTermMemory:
    """Remember, recall and forget, scope by scope."""

    store: MemoryRecords
    embedder: Embedder
    folder: Path
    """Where the index files live (``<data dir>/memory``)."""
    weights: RecallWeights = field(default_factory=RecallWeights)
    dedup_threshold: float = 0.95
    """Cosine above which a new semantic or procedural memory merges into an existing one."""
    ann_threshold: int = 20_000
    """Vectors in a scope above which its index switches from exact search to ANN."""
    save_delay: float = 2.0
    """Seconds an index may stay unsaved after a change (the Store has the truth anyway)."""
    clock: Clock = field(default_factory=SystemClock)
    _indexes: dict[str, VectorIndex] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _saves: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def remember(
        self,
        *,
        scope: str,
        content: str,
        created_by: str,
        memory_type: MemoryType = MemoryType.SEMANTIC,
        importance: float = 0.5,
        expires_at: datetime | None = None,
        source: str | None = None,
        data: dict[str, JsonValue] | None = None,
        memory_id: str | None = None,
    ) -> Remembered:
        """Store a memory in ``scope``; a near-duplicate there is replaced by it.

        The newer wording wins ("prod has 5 replicas" supersedes "prod has 3 replicas"),
        keeping the higher importance and the access count. Episodic memories are never
        merged: two rejections of the same call are two events, and an approver should
        see both. A ``memory_id`` that exists already returns that memory (recording the
        same event twice is harmless). Secrets in ``content`` and ``data`` are masked first:
        a memory is kept for months and recalled into other runs' prompts.
        """
        content, data = redact(content), redact_value(data or {})
        if memory_id is not None:
            existing = await self._existing(memory_id)
            if existing is not None:
                return Remembered(memory=existing)
        vector = await self._embed([content])
        memory = Memory(
            scope=scope, content=content, memory_type=memory_type, importance=importance,
            created_at=self.clock.now(), created_by=created_by, expires_at=expires_at,
            source=source, data=data or {}, **({"id": memory_id} if memory_id else {}),
        )  # fmt: skip
        async with self._lock(scope):
            index = await self._synced(scope)
            twin = None
            if memory_type is not MemoryType.EPISODIC:
                twin = await self._twin(index, scope, vector)
            if twin is not None:
                memory = _successor(memory, twin)
            added = await self.store.add_memory(memory)
            await self._catch_up(scope, index, known={added.seq: vector[0]})
            if twin is not None:
                # Added first, deleted second: a crash in between leaves a duplicate, not a gap.
                await self.store.delete_memory(twin.id)
                await asyncio.to_thread(index.remove, [twin.seq])
        return Remembered(memory=added, replaced=twin)

    async def recall(
        self,
        *,
        scopes: Sequence[str],
        query: str,
        k: int = 5,
        kind: str | None = None,
        min_similarity: float | None = None,
    ) -> list[Recalled]:
        """The ``k`` best memories for ``query`` in ``scopes``, best first; counts the access.

        ``kind`` keeps only memories whose ``data["kind"]`` is that (approval decisions,
        say); ``min_similarity`` overrides the configured relevance floor.
        """
        if not query.strip() or k <= 0:
            return []
        vector = await self._embed([query])
        floor = self.weights.min_similarity if min_similarity is None else min_similarity
        # Over-fetch: some hits may be expired, deleted elsewhere, or of another kind.
        fetch = k * (10 if kind is not None else 3)
        found: list[Recalled] = []
        for scope in dict.fromkeys(scopes):
            found += await self._search(scope, vector, fetch, floor)
        if kind is not None:
            found = [hit for hit in found if hit.memory.data.get("kind") == kind]
        found.sort(key=lambda hit: hit.score, reverse=True)
        best = found[:k]
        if best:
            await self.store.touch_memories([hit.memory.id for hit in best], at=self.clock.now())
        return best

    async def forget(self, memory_id: str) -> Memory | None:
        """Delete a memory from the Store and from this process's index."""
        memory = await self.store.delete_memory(memory_id)
        if memory is not None and memory.scope in self._indexes:
            async with self._lock(memory.scope):
                index = self._indexes[memory.scope]
                await asyncio.to_thread(index.remove, [memory.seq])
                self._schedule_save(memory.scope)
        return memory

    async def rebuild(self, scope: str | None = None) -> dict[str, int]:
        """Rebuild indexes (one scope, or every scope) from the Store; vectors per scope."""
        scopes = [scope] if scope is not None else list(await self.store.memory_counts())
        sizes = {}
        for name in scopes:
            async with self._lock(name):
                index = VectorIndex(self.embedder.dim, ann_threshold=self.ann_threshold)
                self._indexes[name] = index
                await self._catch_up(name, index)
                await self._save(name)
                sizes[name] = len(index)
        return sizes

    def index_kind(self, scope: str) -> str | None:
        """The kind of the loaded index of ``scope`` (exact or ANN), None if not loaded."""
        index = self._indexes.get(scope)
        return None if index is None else index.kind

    async def close(self) -> None:
        """Save every index with unsaved changes."""
        for task in list(self._saves.values()):
            task.cancel()
        await asyncio.gather(*self._saves.values(), return_exceptions=True)
        self._saves.clear()
        for scope in list(self._indexes):
            await self._save(scope)

    # Retrieval

    async def _search(
        self, scope: str, vector: np.ndarray, fetch: int, floor: float
    ) -> list[Recalled]:
        async with self._lock(scope):
            index = await self._synced(scope)
        hits = (await asyncio.to_thread(index.search, vector, fetch))[0]
        relevant = [(seq, s) for seq, s in hits if s >= floor]
        if not relevant:
            return []
        memories = await self.store.memories_by_seq(scope, [seq for seq, _ in relevant])
        similarity = dict(relevant)
        now = self.clock.now()
        return [
            Recalled(memory=m, similarity=cosine, score=self._score(m, cosine, now))
            for m in memories
            if not m.expired(now)
            for cosine in (similarity[m.seq],)
        ]

    def _score(self, memory: Memory, similarity: float, now: datetime) -> float:
        w = self.weights
        age_days = max(0.0, (now - memory.created_at) / timedelta(days=1))
        recency = math.pow(0.5, age_days / w.recency_half_life_days)
        return w.similarity * similarity + w.importance * memory.importance + w.recency * recency

    async def _twin(self, index: VectorIndex, scope: str, vector: np.ndarray) -> Memory | None:
        hits = (await asyncio.to_thread(index.search, vector, 3))[0]
        close = [seq for seq, score in hits if score >= self.dedup_threshold]
        now = self.clock.now()
        found = await self.store.memories_by_seq(scope, close)
        # Events are never merged, so an episodic memory is nobody's twin.
        alive = (m for m in found if not m.expired(now))
        return next((m for m in alive if m.memory_type is not MemoryType.EPISODIC), None)

    async def _existing(self, memory_id: str) -> Memory | None:
        try:
            return await self.store.get_memory(memory_id)
        except NotFound:
            return None

    async def _embed(self, texts: Sequence[str]) -> np.ndarray:
        # Short texts embed quite differently with and without a final full stop
        # (cosine 0.90 for otherwise equal sentences), which would defeat deduplication.
        return await self.embedder.embed([" ".join(t.split()).rstrip(".!;") for t in texts])

    # Indexes

    def _lock(self, scope: str) -> asyncio.Lock:
        return self._locks.setdefault(scope, asyncio.Lock())

    def _path(self, scope: str) -> Path:
        readable = re.sub(r"[^A-Za-z0-9_-]+", "_", scope)[:60]
        digest = hashlib.sha256(scope.encode()).hexdigest()[:12]
        return self.folder / f"{readable}-{digest}.faiss"

    async def _synced(self, scope: str) -> VectorIndex:
        """The scope's index, loaded or rebuilt, caught up with the Store (lock held)."""
        index = self._indexes.get(scope)
        if index is None:
            index = await self._load(scope)
            self._indexes[scope] = index
        await self._catch_up(scope, index)
        return index

    async def _load(self, scope: str) -> VectorIndex:
        path = self._path(scope)
        try:
            return await asyncio.to_thread(
                VectorIndex.load, path, dim=self.embedder.dim, ann_threshold=self.ann_threshold
            )
        except FileNotFoundError:
            pass
        except IndexCorrupt:
            logger.warning("memory index unreadable; rebuilding it from the store",
                           extra={"scope": scope, "path": str(path)})  # fmt: skip
        return VectorIndex(self.embedder.dim, ann_threshold=self.ann_threshold)

    async def _catch_up(
        self, scope: str, index: VectorIndex, known: dict[int, np.ndarray] | None = None
    ) -> None:
        """Add the memories the Store has after ``index.synced``; ``known`` vectors are reused."""
        known = known or {}
        changed = False
        while True:
            batch = await self.store.list_memories(scope, after_seq=index.synced, limit=_SYNC_BATCH)
            if not batch:
                break
            vectors = await self._vectors(batch, known)
            await asyncio.to_thread(index.add, [m.seq for m in batch], vectors)
            index.synced = batch[-1].seq
            changed = True
        if changed:
            self._schedule_save(scope)

    async def _vectors(self, batch: list[Memory], known: dict[int, np.ndarray]) -> np.ndarray:
        missing = [m for m in batch if m.seq not in known]
        if missing:
            embedded = await self._embed([m.content for m in missing])
            known = {**known, **{m.seq: v for m, v in zip(missing, embedded, strict=True)}}
        return np.stack([known[m.seq] for m in batch]).astype(np.float32)

    def _schedule_save(self, scope: str) -> None:
        if scope not in self._saves or self._saves[scope].done():
            self._saves[scope] = asyncio.create_task(self._save_later(scope))

    async def _save_later(self, scope: str) -> None:
        await asyncio.sleep(self.save_delay)
        async with self._lock(scope):
            await self._save(scope)

    async def _save(self, scope: str) -> None:
        index = self._indexes.get(scope)
        if index is None:
            return
        try:
            await asyncio.to_thread(index.save, self._path(scope))
        except OSError:
            # The index is a cache of the Store: the next start catches up or rebuilds.
            logger.warning("could not save memory index", extra={"scope": scope}, exc_info=True)


def _successor(memory: Memory, twin: Memory) -> Memory:
    """``memory`` taking the place of its near-duplicate ``twin``."""
    expiries = [memory.expires_at, twin.expires_at]
    later = None if None in expiries else max(e for e in expiries if e is not None)
    return memory.model_copy(update={
        "importance": max(memory.importance, twin.importance),
        "access_count": twin.access_count,
        "last_accessed": twin.last_accessed,
        "expires_at": later,
        "data": {**twin.data, **memory.data, "merged": int(twin.data.get("merged", 1)) + 1},
    })  # fmt: skip
