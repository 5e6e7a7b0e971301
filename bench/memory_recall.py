"""End-to-end long-term recall: embed the query, search the scope's index, load metadata.

    python -m bench.memory_recall [--n 100000] [--queries 500] [--corpus 20000]

The store (SQLite, the default backend) holds ``n`` memories in one scope. Their vectors
are clustered, low-rank synthetic ones (embedding 100k texts would take minutes and
changes nothing about latency); the queries are real sentences embedded by the real
model. The baseline, measured in the same run query by query in turns, is the old path:
the same ``recall`` with the model on PyTorch (sentence-transformers) instead of ONNX
Runtime. Quality: recall@10 of ONNX-embedded queries through the IVF index over
``corpus`` real texts embedded by the PyTorch path, against exact search with
PyTorch-embedded queries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from rich.console import Console
from rich.table import Table

from agent_core.memory.embedder import Embedder
from agent_core.memory.index import VectorIndex
from agent_core.memory.longterm import LongTermMemory
from agent_core.memory.records import Memory
from agent_core.store.base import dump
from agent_core.store.sqlite import SqliteStore
from bench.memory import Mixture, Row, percentile, recall_at_10, sentences

SCOPE = "channel:CBENCH"
CORPUS = 20_000
_RECALL_QUERIES = 200
_QUERIES = [
    "how do we deploy the {} service",
    "who owns the {} database",
    "why is {} slow in staging",
    "what broke the {} build last week",
    "where are the {} logs kept",
]
_THINGS = ["web", "billing", "search", "auth", "payments", "email", "reports", "cache"]


async def fill(store: SqliteStore, n: int) -> None:
    """``n`` memories in one transaction (setup only: the Store adds one at a time)."""
    memories = [
        Memory(scope=SCOPE, content=f"fact number {i} about the systems", created_by="U0BENCH")
        for i in range(n)
    ]

    def insert(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO memories (seq, id, scope, body) VALUES (?, ?, ?, ?)",
            [(i + 1, m.id, SCOPE, dump(m.model_copy(update={"seq": i + 1})))
             for i, m in enumerate(memories)],
        )  # fmt: skip

    await store._db.write(insert)  # the bench's own setup, not a Store operation


def timed_ms(samples: list[float], start: float) -> None:
    samples.append((time.perf_counter() - start) * 1000)


async def measure(n: int, queries: int, corpus: int = CORPUS) -> list[Row]:
    """Latency rows (ONNX Runtime against the PyTorch path) and the recall@10 row."""
    # No query cache on either side: every query below is new; both pay the same.
    embedder = Embedder(backend="onnx", cache_size=0)
    old = Embedder(backend="torch", cache_size=0)
    await embedder.warm()
    await old.warm()
    assert (embedder.backend, old.backend) == ("onnx", "torch"), "the ONNX model did not load"
    texts = [_QUERIES[i % len(_QUERIES)].format(_THINGS[i % len(_THINGS)]) + f" #{i}"
             for i in range(queries)]  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        store = await SqliteStore.open(Path(folder) / "airlock.db")
        await fill(store, n)
        memory = LongTermMemory(store=store, embedder=embedder, folder=Path(folder) / "memory")
        before = LongTermMemory(store=store, embedder=old, folder=Path(folder) / "memory")
        index = VectorIndex(embedder.dim, ann_threshold=memory.ann_threshold)
        vectors = Mixture.seeded(7).sample(n, np.random.default_rng(7))
        index.add(list(range(1, n + 1)), vectors)
        index.synced = n
        index.save(memory._path(SCOPE))  # as a previous process would have left it
        for each in (memory, before):
            await each.recall(scopes=[SCOPE], query="warm up: load the index", k=10)
        times: dict[str, list[float]] = {name: [] for name in _TIMED}
        # New and old path in turns, query by query, so both see the same machine load.
        for text in texts:
            start = time.perf_counter()
            vector = await embedder.embed([text])
            timed_ms(times["embed"], start)
            start = time.perf_counter()
            await old.embed([text])
            timed_ms(times["embed old"], start)
            start = time.perf_counter()
            index.search(vector, 30)
            timed_ms(times["search"], start)
            start = time.perf_counter()
            found = await memory.recall(scopes=[SCOPE], query=text, k=10)
            timed_ms(times["recall"], start)
            assert found or memory.weights.min_similarity > 0
            start = time.perf_counter()
            await before.recall(scopes=[SCOPE], query=text, k=10)
            timed_ms(times["recall old"], start)
        kind = index.kind
        await store.close()
    quality = real_recall(embedder, old, corpus, _RECALL_QUERIES)
    return [
        _latency("query embedding alone, ONNX Runtime vs PyTorch", times["embed"],
                 times["embed old"]),
        _latency(f"index search alone, k=30, {n:,} vectors ({kind})", times["search"]),
        _latency(f"recall end to end, k=10, {n:,} memories, vs the PyTorch path",
                 times["recall"], times["recall old"]),
        _latency(f"recall end to end, k=10, {n:,} memories, the PyTorch path (old)",
                 times["recall old"]),
        Row(what=f"recall@10 vs exact, {corpus:,} real memories, {_RECALL_QUERIES} queries",
            median=quality, unit="recall"),
    ]  # fmt: skip


_TIMED = ("embed", "embed old", "search", "recall", "recall old")


def _latency(what: str, samples: list[float], baseline: list[float] | None = None) -> Row:
    return Row(
        what=what,
        median=statistics.median(samples),
        p99=percentile(samples, 0.99),
        baseline=None if baseline is None else statistics.median(baseline),
    )


def real_recall(embedder: Embedder, old: Embedder, corpus: int, queries: int) -> float:
    """Recall@10 of what ``recall`` searches against the old path's exact answer.

    Memories are embedded by the PyTorch path (as indexes built before ONNX Runtime
    hold them) into a VectorIndex past its ANN threshold; queries are embedded by the
    ONNX path, one at a time as ``recall`` does. The truth: the same queries embedded
    by the PyTorch path, searched exactly.
    """
    texts = sentences(corpus + queries, seed=11)
    stored, asked = old.embed_sync(texts[:corpus]), texts[corpus:]
    fresh = np.vstack([embedder.embed_sync([text]) for text in asked])
    exact = faiss.IndexFlatIP(embedder.dim)
    exact.add(stored)
    _, truth = exact.search(old.embed_sync(asked), 10)
    index = VectorIndex(embedder.dim, ann_threshold=corpus // 2)
    index.add(np.arange(corpus), stored)
    return recall_at_10(index, fresh, truth)


def render(rows: list[Row]) -> Table:
    load = os.getloadavg()[0]
    title = f"long-term recall (SQLite store, real query embeddings), load {load:.1f} at the end"
    table = Table("what", "median", "p99", "baseline median (PyTorch path)", "ratio", title=title)
    for row in rows:
        if row.unit == "recall":
            table.add_row(row.what, f"{row.median:.3f}", "", "", "")
            continue
        ratio = f"{row.median / row.baseline:.2f}x" if row.baseline else ""
        baseline = f"{row.baseline:.2f} ms" if row.baseline else ""
        p99 = f"{row.p99:.2f} ms" if row.p99 is not None else ""
        table.add_row(row.what, f"{row.median:.2f} ms", p99, baseline, ratio)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="memories in the scope")
    parser.add_argument("--queries", type=int, default=500, help="recall calls measured")
    parser.add_argument("--corpus", type=int, default=CORPUS,
                        help="real texts embedded for the recall@10 row")  # fmt: skip
    args = parser.parse_args()
    Console(width=150).print(render(asyncio.run(measure(args.n, args.queries, args.corpus))))


if __name__ == "__main__":
    main()
