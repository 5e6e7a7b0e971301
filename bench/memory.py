"""Memory benchmark: embedding throughput, vector search latency and recall, index size.

    python -m bench.memory [--quick]

Search through :class:`VectorIndex` past its threshold (IVF-Flat) is compared with
exact search (a bare faiss ``IndexFlatIP``) over the same vectors and queries, and
its recall@10 is measured against that exact search. Uniformly random vectors make
ANN recall meaningless, so the vectors are low-rank and clustered like embeddings:
a Gaussian mixture of 4,096 centres in 64 dimensions, projected to 384 by a fixed
random matrix, plus small noise, normalised. Queries are fresh draws from the same
mixture, never stored vectors. Recall on real MiniLM embeddings of generated
sentences checks that figure. ``--quick`` stops at 100,000 vectors.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from agent_core.memory.embedder import Embedder
from agent_core.memory.index import VectorIndex

DIM = 384
QUERIES = 1_000
# An exact query at a million vectors scans 1.5 GB (about 160 ms): fewer of them.
EXACT_QUERIES_AT_1M = 100
SENTENCES = 10_000
_CHUNK = 65_536

Vectors = NDArray[np.float32]


@dataclass(kw_only=True)
class Row:
    """One line of the result table."""

    what: str
    median: float
    p99: float | None = None
    baseline: float | None = None
    unit: str = "ms"


@dataclass(kw_only=True, frozen=True)
class Mixture:
    """Clustered, low-rank vectors that behave like embeddings under ANN search."""

    centres: NDArray[np.float32]
    """Cluster centres in the latent space."""
    projection: NDArray[np.float32]
    """Fixed map from the latent space to DIM."""
    spread: float = 0.6
    """Standard deviation around a centre, in latent units."""
    noise: float = 0.05
    """Half-width of the uniform noise added in DIM."""

    @classmethod
    def seeded(cls, seed: int, *, centres: int = 4_096, latent: int = 64) -> Mixture:
        rng = np.random.default_rng(seed)
        return cls(
            centres=rng.standard_normal((centres, latent), dtype=np.float32),
            projection=rng.standard_normal((latent, DIM), dtype=np.float32) / np.sqrt(latent),
        )

    def sample(self, n: int, rng: np.random.Generator) -> Vectors:
        out = np.empty((n, DIM), dtype=np.float32)
        for start in range(0, n, _CHUNK):
            rows = out[start : start + _CHUNK]
            latent = self.centres[rng.integers(0, len(self.centres), len(rows))]
            latent += self.spread * rng.standard_normal(latent.shape, dtype=np.float32)
            np.matmul(latent, self.projection, out=rows)
            rows += rng.random(rows.shape, dtype=np.float32) * (2 * self.noise) - self.noise
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return out


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latencies(search: Callable[[Vectors], object], queries: Vectors) -> list[float]:
    """Milliseconds per single query."""
    samples = []
    for i in range(len(queries)):
        start = time.perf_counter()
        search(queries[i : i + 1])
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def latency_row(what: str, samples: list[float], baseline: list[float] | None = None) -> Row:
    return Row(
        what=what,
        median=statistics.median(samples),
        p99=percentile(samples, 0.99),
        baseline=None if baseline is None else statistics.median(baseline),
    )


def recall_at_10(index: VectorIndex, queries: Vectors, truth: NDArray[np.int64]) -> float:
    found = [{i for i, _ in hits} for hits in index.search(queries, 10)]
    hits = sum(len(f & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def rss_mb() -> float:
    """Resident memory of this process, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1_000}k"


def exact_side(
    vectors: Vectors, queries: Vectors, n_timed: int
) -> tuple[NDArray[np.int64], list[float]]:
    """Exact top-10 of every query (batched) and single-query latencies of exact search."""
    exact = faiss.IndexFlatIP(DIM)
    exact.add(vectors)
    _, truth = exact.search(queries, 10)
    timed = latencies(lambda q: exact.search(q, 10), queries[:n_timed])
    return truth, timed


def bench_size(n: int, mixture: Mixture, queries: Vectors) -> list[Row]:
    """Exact against VectorIndex (IVF) at ``n`` vectors."""
    vectors = mixture.sample(n, np.random.default_rng(n))
    n_exact = EXACT_QUERIES_AT_1M if n >= 1_000_000 else len(queries)
    truth, exact = exact_side(vectors, queries, n_exact)
    gc.collect()
    before = rss_mb()
    # Past the default threshold at 100k and up; at 10k a lower one, to measure IVF there.
    index = VectorIndex(DIM, ann_threshold=min(20_000, n // 2))
    start = time.perf_counter()
    index.add(np.arange(n), vectors)
    build = time.perf_counter() - start
    after = rss_mb()
    ivf = latencies(lambda q: index.search(q, 10), queries)
    size = label(n)
    return [
        latency_row(f"search k=10, exact, {size} ({n_exact} queries)", exact),
        latency_row(f"search k=10, VectorIndex {index.kind}, {size}", ivf, exact),
        Row(what=f"recall@10 vs exact, {size}", median=recall_at_10(index, queries, truth),
            unit="recall"),
        Row(what=f"build {size}: add, train, calibrate -> {index!r}", median=build, unit="s"),
        Row(what=f"RSS growth from the VectorIndex, {size}", median=after - before, unit="MB"),
        Row(what=f"process RSS with it built, {size} (source vectors too)", median=after,
            unit="MB"),
    ]  # fmt: skip


def sentences(count: int, seed: int) -> list[str]:
    """``count`` distinct ops-chat sentences from templates x people x verbs x things x hosts."""
    templates = [
        "{who} asked to {verb} the {thing} on {host}",
        "please {verb} {host}'s {thing} before the release",
        "can we {verb} the {thing} on {host} tonight?",
        "{who} says the {thing} on {host} needs us to {verb} it",
        "remember: never {verb} the {thing} on {host} without {who}",
        "last week {who} had to {verb} the {thing} on {host} twice",
    ]
    people = ["Ana", "Bo", "the SRE team", "Chen", "Dana", "the DBA", "Eli", "ops", "Farid"]
    verbs = ["restart", "upgrade", "roll back", "scale up", "drain", "back up", "patch",
             "rotate the keys of", "reindex", "migrate", "snapshot", "resize"]  # fmt: skip
    things = ["nginx proxy", "postgres primary", "redis cache", "kafka broker", "disk",
              "TLS certificate", "cron jobs", "load balancer", "search cluster", "CI runner",
              "DNS zone", "message queue", "object store", "billing service", "VPN"]  # fmt: skip
    hosts = [f"{kind}-{i}" for kind in ("web", "db", "cache", "batch") for i in range(1, 6)]
    shape = (len(templates), len(people), len(verbs), len(things), len(hosts))
    picks = np.random.default_rng(seed).choice(int(np.prod(shape)), size=count, replace=False)
    out = []
    for t, p, v, th, h in zip(*np.unravel_index(picks, shape), strict=True):
        out.append(
            templates[t].format(who=people[p], verb=verbs[v], thing=things[th], host=hosts[h])
        )
    return out


def bench_embeddings(stored: int = SENTENCES) -> list[Row]:
    """Model load, throughput at batch 64, and ANN recall on real embeddings of ``stored`` texts."""
    texts = sentences(stored + QUERIES, seed=7)
    embedder = Embedder(batch_size=64)
    start = time.perf_counter()
    embedder.embed_sync(["warm up"])
    load = time.perf_counter() - start
    batches, parts = [], []
    for first in range(0, len(texts), 64):
        start = time.perf_counter()
        parts.append(embedder.embed_sync(texts[first : first + 64]))
        batches.append((time.perf_counter() - start) * 1000)
    vectors = np.vstack(parts)
    stored_vectors, queries = vectors[:stored], vectors[stored:]
    truth, _ = exact_side(stored_vectors, queries, 0)
    index = VectorIndex(DIM, ann_threshold=stored // 2)
    index.add(np.arange(stored), stored_vectors)
    return [
        Row(what="embedding model load (import + weights)", median=load, unit="s"),
        latency_row(f"embed a batch of 64 ({len(texts):,} texts)", batches),
        Row(what="embeddings per second, batch 64", median=len(texts) / (sum(batches) / 1000),
            unit="/s"),
        Row(what=f"recall@10, {stored:,} real embeddings, {QUERIES:,} queries -> {index!r}",
            median=recall_at_10(index, queries, truth), unit="recall"),
    ]  # fmt: skip


def run(quick: bool, sentences: int = SENTENCES) -> list[Row]:
    """Every measurement; ``quick`` stops at 100k vectors (a smoke test)."""
    rows = bench_embeddings(sentences)
    mixture = Mixture.seeded(2024)
    queries = mixture.sample(QUERIES, np.random.default_rng(1))
    for n in (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000):
        rows += bench_size(n, mixture, queries)
        gc.collect()
    return rows


_FORMATS = {"ms": "{:.3f} ms", "s": "{:.1f} s", "MB": "{:,.0f} MB", "/s": "{:,.0f}/s",
            "recall": "{:.3f}"}  # fmt: skip


def render(rows: list[Row], title: str) -> Table:
    table = Table(title=title)
    for column in ("what", "median", "p99", "baseline (exact) median", "ratio"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for row in rows:
        fmt = _FORMATS[row.unit]
        table.add_row(
            row.what,
            fmt.format(row.median),
            "-" if row.p99 is None else fmt.format(row.p99),
            "-" if row.baseline is None else fmt.format(row.baseline),
            "-" if row.baseline is None else f"{row.median / row.baseline:.3f}x",
        )
    return table


def main(quick: bool, sentences: int = SENTENCES) -> None:
    start, load = time.perf_counter(), os.getloadavg()[0]
    rows = run(quick, sentences)
    took = time.perf_counter() - start
    # Other work on the machine skews latencies: the load average says how much there was.
    title = (
        f"airlock memory ({'quick' if quick else 'full'}), {took:.0f} s, "
        f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    )
    Console(width=150).print(render(rows, title))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 10k and 100k vectors")
    parser.add_argument("--sentences", type=int, default=SENTENCES,
                        help="real texts embedded (and 1,000 queries more)")  # fmt: skip
    arguments = parser.parse_args()
    main(arguments.quick, arguments.sentences)
