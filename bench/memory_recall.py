"""End-to-end long-term recall: embed the query, search the scope's index, load metadata.

    python -m bench.memory_recall [--n 100000] [--queries 500]

The store (SQLite, the default backend) holds ``n`` memories in one scope. Their vectors
are clustered, low-rank synthetic ones (embedding 100k texts would take minutes and
changes nothing about latency); the queries are real sentences embedded by the real
model. Baselines measured in the same run: the query embedding alone, and the index
search alone, so the ratio shows what the store and the bookkeeping add.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from agent_core.memory.embedder import Embedder
from agent_core.memory.index import VectorIndex
from agent_core.memory.longterm import LongTermMemory
from agent_core.memory.records import Memory
from agent_core.store.base import dump
from agent_core.store.sqlite import SqliteStore
from bench.memory import Mixture, Row, percentile

SCOPE = "channel:CBENCH"
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


async def measure(n: int, queries: int) -> list[Row]:
    embedder = Embedder()
    await embedder.warm()
    texts = [_QUERIES[i % len(_QUERIES)].format(_THINGS[i % len(_THINGS)]) + f" #{i}"
             for i in range(queries)]  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        store = await SqliteStore.open(Path(folder) / "airlock.db")
        await fill(store, n)
        memory = LongTermMemory(store=store, embedder=embedder, folder=Path(folder) / "memory")
        index = VectorIndex(embedder.dim, ann_threshold=memory.ann_threshold)
        vectors = Mixture.seeded(7).sample(n, np.random.default_rng(7))
        index.add(list(range(1, n + 1)), vectors)
        index.synced = n
        index.save(memory._path(SCOPE))  # as a previous process would have left it
        await memory.recall(scopes=[SCOPE], query="warm up: load the index", k=10)
        embed: list[float] = []
        search: list[float] = []
        recall: list[float] = []
        for text in texts:
            start = time.perf_counter()
            vector = await embedder.embed([text])
            timed_ms(embed, start)
            start = time.perf_counter()
            index.search(vector, 30)
            timed_ms(search, start)
            start = time.perf_counter()
            found = await memory.recall(scopes=[SCOPE], query=text, k=10)
            timed_ms(recall, start)
            assert found or memory.weights.min_similarity > 0
        kind = index.kind
        await store.close()
    both = [e + s for e, s in zip(embed, search, strict=True)]
    return [
        Row(what="query embedding alone", median=statistics.median(embed),
            p99=percentile(embed, 0.99)),
        Row(what=f"index search alone, k=30, {n:,} vectors ({kind})",
            median=statistics.median(search), p99=percentile(search, 0.99)),
        Row(what=f"recall end to end, k=10, {n:,} memories", median=statistics.median(recall),
            p99=percentile(recall, 0.99), baseline=statistics.median(both)),
    ]  # fmt: skip


def render(rows: list[Row]) -> Table:
    table = Table("what", "median", "p99", "baseline (embed + search)", "ratio",
                  title="long-term recall (SQLite store, real query embeddings)")  # fmt: skip
    for row in rows:
        ratio = f"{row.median / row.baseline:.2f}x" if row.baseline else ""
        baseline = f"{row.baseline:.2f} ms" if row.baseline else ""
        p99 = f"{row.p99:.2f} ms" if row.p99 is not None else ""
        table.add_row(row.what, f"{row.median:.2f} ms", p99, baseline, ratio)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="memories in the scope")
    parser.add_argument("--queries", type=int, default=500, help="recall calls measured")
    args = parser.parse_args()
    Console().print(render(asyncio.run(measure(args.n, args.queries))))


if __name__ == "__main__":
    main()
