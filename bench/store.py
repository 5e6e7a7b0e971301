"""Store benchmark: decision latency, signal latency and bytes per parked run, per backend.

    python -m bench.store [--n 1000]

Each backend is compared with a baseline measured in the same run on the same server or file:
a bare ``SET`` round trip for Redis, a bare ``INSERT`` + ``COMMIT`` (same pragmas) for SQLite.
A "parked run" is what a run waiting on a human leaves in the store: the run record, its
pending approval and a small checkpoint. Audit appends are tool-call events spread over
twenty trails, one at a time, as a run's steps append them.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from agent_core.audit.chain import AuditKey
from agent_core.models import (
    Approval,
    ApprovalDecided,
    AuditEvent,
    Decision,
    DecisionKind,
    RiskLevel,
    Run,
    ToolCallSubject,
)
from agent_core.store import Store, open_store
from agent_core.testing.redis_server import RedisServer


@dataclass(kw_only=True)
class Row:
    """One line of the result table."""

    backend: str
    what: str
    median: float
    p99: float
    baseline: float | None = None
    unit: str = "ms"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(n: int, step: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await step(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def parked(i: int) -> tuple[Run, Approval]:
    run = Run(goal=f"restart the web tier in staging ({i})", requester="U012AB3CD", channel="C111")
    subject = ToolCallSubject(
        subtask_id="s2",
        tool="run_command",
        arguments={"cmd": "systemctl restart web", "host": "web-3"},
    )
    return run, Approval(run_id=run.id, subject=subject, risk=RiskLevel.HIGH)


async def decision_latency(store: Store, n: int) -> list[float]:
    approvals = []
    for i in range(n):
        _, approval = parked(i)
        approvals.append(await store.create_approval(approval))

    async def decide(i: int) -> object:
        return await store.record_decision(
            approvals[i].id, Decision(kind=DecisionKind.APPROVE, by="U0APPROVER")
        )

    return await timed(n, decide)


_TRAILS = 20
_AUDIT_KEY = AuditKey.generate()
"""Audit events are sealed with a key, as in production (the key is this run's own)."""


async def audit_latency(store: Store, n: int) -> list[float]:
    data = {
        "tool": "run_command", "arguments": {"cmd": "systemctl restart web", "host": "web-3"},
        "approved_by": "U0APPROVER", "approval_id": "apr_0123456789ab", "worker": "worker-1",
    }  # fmt: skip

    async def append(i: int) -> object:
        event = AuditEvent(run_id=f"run_bench_{i % _TRAILS}", kind="tool_call", actor="airlock",
                           data=data)  # fmt: skip
        return await store.append_audit(event)

    return await timed(n, append)


def append_rows(backend: str, samples: list[float], baseline: list[float]) -> list[Row]:
    per_second = 1000 * len(samples) / sum(samples)
    return [
        Row(backend=backend, what="audit append", median=statistics.median(samples),
            p99=percentile(samples, 0.99), baseline=statistics.median(baseline)),
        Row(backend=backend, what="audit appends per second, one at a time", median=per_second,
            p99=per_second, unit="/s"),
    ]  # fmt: skip


async def signal_latency(publisher: Store, listener: Store, n: int) -> list[float]:
    async with listener.subscribe() as signals:

        async def round_trip(i: int) -> object:
            await publisher.publish(ApprovalDecided(approval_id=f"apr_{i}", run_id="run_bench"))
            return await signals.get()

        return await timed(n, round_trip)


async def park(store: Store, n: int) -> None:
    for i in range(n):
        run, approval = parked(i)
        created = await store.create_run(run)
        await store.create_approval(approval)
        await store.save_run(created, checkpoint=b"x" * 200)


async def bench_sqlite(n: int, folder: Path) -> list[Row]:
    url = f"sqlite:///{folder / 'bench.db'}"
    store, other = (
        await open_store(url, poll_interval=0.01, audit_key=_AUDIT_KEY),
        await open_store(url, poll_interval=0.01, audit_key=_AUDIT_KEY),
    )
    try:
        decisions = await decision_latency(store, n)
        appends = await audit_latency(store, n)
        local = await signal_latency(store, store, n)
        remote = await signal_latency(store, other, min(n, 200))
    finally:
        await store.close()
        await other.close()
    baseline = sqlite_baseline(folder / "baseline.db", n)
    parked_path = folder / "parked.db"
    parked_store = await open_store(f"sqlite:///{parked_path}")
    await park(parked_store, n)
    await parked_store.close()
    size = sqlite_bytes(parked_path)
    return [
        Row(backend="sqlite", what="record_decision", median=statistics.median(decisions),
            p99=percentile(decisions, 0.99), baseline=statistics.median(baseline)),
        Row(backend="sqlite", what="signal, same store", median=statistics.median(local),
            p99=percentile(local, 0.99)),
        Row(backend="sqlite", what="signal, other store (10 ms poll)",
            median=statistics.median(remote), p99=percentile(remote, 0.99)),
        Row(backend="sqlite", what="bytes per parked run", median=size / n, p99=size / n, unit="B"),
        *append_rows("sqlite", appends, baseline),
    ]  # fmt: skip


def sqlite_baseline(path: Path, n: int) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    samples = []
    for i in range(n):
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (id, body) VALUES (?, ?)", (i, "x" * 400))
        conn.execute("COMMIT")
        samples.append((time.perf_counter() - start) * 1000)
    conn.close()
    return samples


def sqlite_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    used = conn.execute(
        "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count, "
        "pragma_freelist_count, pragma_page_size"
    ).fetchone()[0]
    conn.close()
    return int(used)


async def bench_redis(n: int) -> list[Row]:
    with RedisServer() as server:
        store = await open_store(server.url, audit_key=_AUDIT_KEY)
        other = await open_store(server.url, audit_key=_AUDIT_KEY)
        raw = Redis.from_url(server.url)
        try:
            decisions = await decision_latency(store, n)
            appends = await audit_latency(store, n)
            local = await signal_latency(store, store, n)
            remote = await signal_latency(store, other, n)
            baseline = await timed(n, lambda i: raw.set(f"baseline:{i}", "x" * 400))
            before = int((await raw.info("memory"))["used_memory"])
            parked_store = await open_store(f"{server.url}?prefix=parked:")
            await park(parked_store, n)
            await parked_store.close()
            after = int((await raw.info("memory"))["used_memory"])
        finally:
            await store.close()
            await other.close()
            await raw.aclose()
    per_run = (after - before) / n
    return [
        Row(backend="redis", what="record_decision", median=statistics.median(decisions),
            p99=percentile(decisions, 0.99), baseline=statistics.median(baseline)),
        Row(backend="redis", what="signal, same store", median=statistics.median(local),
            p99=percentile(local, 0.99)),
        Row(backend="redis", what="signal, other store (pub/sub)", median=statistics.median(remote),
            p99=percentile(remote, 0.99), baseline=statistics.median(baseline)),
        Row(backend="redis", what="bytes per parked run (server memory)", median=per_run,
            p99=per_run, unit="B"),
        *append_rows("redis", appends, baseline),
    ]  # fmt: skip


def render(rows: list[Row], n: int) -> Table:
    table = Table(title=f"airlock store, n={n}")
    for column in ("backend", "what", "median", "p99", "baseline median", "ratio"):
        table.add_column(column, justify="left" if column in ("backend", "what") else "right")
    for row in rows:
        fmt = {"ms": "{:.3f} ms", "B": "{:.0f} B", "/s": "{:,.0f}/s"}[row.unit]
        baseline = "-" if row.baseline is None else fmt.format(row.baseline)
        ratio = "-" if row.baseline is None else f"{row.median / row.baseline:.1f}x"
        table.add_row(
            row.backend, row.what, fmt.format(row.median), fmt.format(row.p99), baseline, ratio
        )
    return table


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="airlock-bench-") as folder:
        rows = await bench_sqlite(n, Path(folder))
    rows += await bench_redis(n)
    Console(width=120).print(render(rows, n))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="operations per measurement")
    asyncio.run(main(parser.parse_args().n))
