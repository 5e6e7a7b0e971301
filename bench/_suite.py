"""Each benchmark of ``bench/`` reduced to rows of one shape, for ``python -m bench``.

Sizes are the ones docs/benchmarks.md quotes, except where a full-size run would push the whole
suite past ten minutes on a 2-core machine; those are named in each row.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import (
    approvals,
    command_sandbox,
    durable_writes,
    executor_step,
    memory,
    memory_recall,
    observability,
    one_tool_goal,
    prompt_cache,
    redaction,
    scale,
    slack_ack,
    store,
)


@dataclass(kw_only=True)
class Line:
    """One row of the combined table: a measure and, when there is one, its baseline."""

    benchmark: str
    what: str
    median: float | None = None
    p99: float | None = None
    baseline: float | None = None
    unit: str = "ms"
    note: str = ""
    """Shown instead of numbers when the thing measured does not exist yet."""


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _latency(bench: str, what: str, samples: list[float], base: list[float] | None) -> Line:
    return Line(
        benchmark=bench,
        what=what,
        median=statistics.median(samples),
        p99=_p99(samples),
        baseline=statistics.median(base) if base else None,
    )


def slack_ack_lines(n: int) -> list[Line]:
    """Ack latency of airlock's ``/slack/events`` against a bare Bolt app (the issue's target is
    on the p99, so its ratio has a row of its own), and with airlock's goal intake held."""
    bare, airlock, held = asyncio.run(slack_ack.measure(n))
    assert bare.clicks is not None and airlock.clicks is not None
    return [
        _latency("slack_ack", f"ack an app mention, vs bare Bolt ({n})", airlock.mentions,
                 bare.mentions),
        Line(benchmark="slack_ack", what="ack an app mention, p99 vs bare Bolt's p99",
             median=_p99(airlock.mentions), baseline=_p99(bare.mentions)),
        _latency("slack_ack", f"ack an app mention, intake held, vs bare Bolt ({n})",
                 held.mentions, bare.mentions),
        Line(benchmark="slack_ack", what="ack an app mention, intake held, p99 vs bare's p99",
             median=_p99(held.mentions), baseline=_p99(bare.mentions)),
        _latency("slack_ack", f"ack a button click, vs bare Bolt ({n})", airlock.clicks,
                 bare.clicks),
    ]  # fmt: skip


def executor_lines(steps: int, runs: int) -> list[Line]:
    """A tool step through the whole orchestrator against a hand-written SDK loop."""

    async def both(latency: float) -> dict[str, executor_step.Measured]:
        with tempfile.TemporaryDirectory(prefix="airlock-bench-") as name:
            return {
                kind: await executor_step.measure(kind, steps, runs, latency, Path(name))
                for kind in ("baseline", "airlock")
            }

    slow, fast = asyncio.run(both(0.05)), asyncio.run(both(0.0))
    bench = "executor_step"
    return [
        _latency(bench, "wall per step, 50 ms model, vs SDK loop", slow["airlock"].wall_per_step,
                 slow["baseline"].wall_per_step),
        _latency(bench, "wall per step, 0 ms model, vs SDK loop", fast["airlock"].wall_per_step,
                 fast["baseline"].wall_per_step),
        _latency(bench, "CPU per step, 0 ms model, vs SDK loop", fast["airlock"].cpu_per_step,
                 fast["baseline"].cpu_per_step),
    ]  # fmt: skip


def one_tool_goal_lines(goals: int, langgraph_python: str | None) -> list[Line]:
    """An approved one-tool goal through airlock's run host against an SDK loop, at 0 ms and
    50 ms of model latency; LangGraph's human in the loop against its own, given its python."""
    result = asyncio.run(one_tool_goal.measure(goals, langgraph_python))
    return [
        _latency("one_tool_goal", f"{row.what} ({goals})", row.samples, row.baseline)
        for row in result.rows
    ]


def prompt_cache_lines(steps: int) -> list[Line]:
    """Input tokens read from the prompt cache on a run, and its input dollars, against the
    same requests with the breakpoints airlock placed before (tools and system only)."""
    measured = asyncio.run(prompt_cache.measure(steps))
    now, before = measured.airlock[-1], measured.before[-1]
    bench, what = "prompt_cache", f"{steps}-step run, {prompt_cache.MODEL}"
    return [
        Line(benchmark=bench, what=f"input read from cache, {what}", median=now.read_share,
             baseline=before.read_share, unit="share"),
        Line(benchmark=bench, what=f"input dollars per run, {what}",
             median=now.dollars(measured.price), baseline=before.dollars(measured.price),
             unit="$"),
    ]  # fmt: skip


def command_sandbox_lines(n: int) -> list[Line]:
    """``echo hi`` through ``run_command`` in the sandbox, against the same without it."""
    samples = asyncio.run(command_sandbox.measure(n))
    return [_latency("command_sandbox", f"run_command 'echo hi', vs no sandbox ({n})",
                     samples["sandboxed"], samples["plain"])]  # fmt: skip


def approvals_lines(n: int) -> list[Line]:
    """Decision-to-resume latency (baseline: a store signal's round trip) and parked runs."""
    result, sizes = asyncio.run(approvals.measure(n))
    lines = [
        _latency("approvals", what, samples, base)
        for what, (samples, base) in result.samples.items()
    ]
    for backend, rss, stored in sizes:
        lines.append(Line(benchmark="approvals", what=f"RSS per parked run, {n:,} parked, "
                          f"{backend}", median=rss / 1024, unit="KB"))  # fmt: skip
        lines.append(Line(benchmark="approvals", what=f"store bytes per parked run, {backend}",
                          median=stored / 1024, unit="KB"))  # fmt: skip
    return lines


async def _store_rows(n: int) -> list[store.Row]:
    with tempfile.TemporaryDirectory(prefix="airlock-bench-") as folder:
        rows = await store.bench_sqlite(n, Path(folder))
    return rows + await store.bench_redis(n)


def store_lines(n: int) -> list[Line]:
    """Store operations against a bare ``INSERT``+``COMMIT`` (SQLite) or ``SET`` (Redis)."""
    return [
        Line(benchmark="store", what=f"{row.backend}: {row.what}", median=row.median,
             p99=None if row.unit in ("B", "/s") else row.p99, baseline=row.baseline,
             unit=row.unit)
        for row in asyncio.run(_store_rows(n))
    ]  # fmt: skip


def durable_writes_lines(goals: int) -> list[Line]:
    """Store calls, durable writes, wall and CPU of one approved one-tool goal."""
    results = asyncio.run(durable_writes.run_all(goals))
    bench, lines = "durable_writes", []
    for name, m in results.items():
        sqlite = name.startswith("SQLite")
        writes = "durable writes (commits)" if sqlite else "commands processed"
        lines += [
            Line(benchmark=bench, what=f"{name}: store calls per goal", median=m.store_calls,
                 unit=""),
            Line(benchmark=bench, what=f"{name}: {writes} per goal",
                 median=statistics.median(m.writes), unit=""),
            _latency(bench, f"{name}: wall per goal ({goals})", m.walls, None),
            _latency(bench, f"{name}: CPU per goal ({goals})", m.cpus, None),
        ]  # fmt: skip
    return lines


def memory_lines(real_texts: int, sizes: tuple[int, ...]) -> list[Line]:
    """Vector search (baseline: exact search), ANN recall, embedding throughput."""
    rows = memory.bench_embeddings(real_texts)
    mixture = memory.Mixture.seeded(2024)
    queries = mixture.sample(memory.QUERIES, np.random.default_rng(1))
    for n in sizes:
        rows += memory.bench_size(n, mixture, queries)
    skipped = ("RSS growth", "process RSS", "search k=10, exact", "embed a batch", "build")
    return [
        Line(benchmark="memory", what=row.what.split(" -> ")[0], median=row.median, p99=row.p99,
             baseline=row.baseline, unit=row.unit)
        for row in rows
        if not row.what.startswith(skipped)
    ]  # fmt: skip


def recall_lines(n: int, queries: int, corpus: int) -> list[Line]:
    """``recall`` end to end against the same on the PyTorch path, and its recall@10."""
    rows = asyncio.run(memory_recall.measure(n, queries, corpus))
    return [
        Line(benchmark="memory_recall", what=row.what, median=row.median, p99=row.p99,
             baseline=row.baseline, unit=row.unit)
        for row in rows
    ]  # fmt: skip


def observability_lines(steps: int, runs: int) -> list[Line]:
    """Tracing, metrics and audit on an executor step, against all three off."""
    bench = asyncio.run(observability.measure(steps, runs))
    off = bench.walls["off"]
    return [
        _latency("observability", f"wall per step, {variant.name}, vs all off",
                 bench.walls[variant.name], off)
        for variant in observability.VARIANTS[1:]
    ]  # fmt: skip


def redaction_lines(n: int) -> list[Line]:
    """``redact`` per 10 KB of ordinary and secret-dense text against the old hand-written
    patterns, the detector with and without its keyword prefilter, a checkpoint masked."""
    return [
        Line(benchmark="redaction", what=row.what + (f", vs {row.baseline_name}"
             if row.baseline_name else ""), median=row.median, p99=row.p99,
             baseline=row.baseline)
        for row in redaction.measure(n)
    ]  # fmt: skip


def scale_out_lines(goals: int, clicks: int) -> list[Line]:
    """Goals per second through 2 front ends and 1, 2, 4 workers on one Redis (baseline: one
    worker), and Approve-to-resume across processes (baseline: one ``airlock serve``)."""

    async def run() -> scale.Result:
        with tempfile.TemporaryDirectory(prefix="airlock-bench-") as folder:
            return await scale.measure(goals, 0.05, clicks, 16, Path(folder))

    result = asyncio.run(run())
    one = result.throughput[0].per_second
    lines = [
        Line(benchmark="scale_out", what=f"goals/s, 2 front ends, {row.workers} worker(s), "
             f"50 ms model ({goals})", median=row.per_second,
             baseline=None if row.workers == 1 else one, unit="/s")
        for row in result.throughput
    ]  # fmt: skip
    split, single = result.resume["front end + worker"], result.resume["one serve"]
    lines.append(_latency("scale_out", f"Approve 200 -> tool starts, front end + worker, vs one "
                          f"serve ({clicks})", split, single))  # fmt: skip
    return lines
