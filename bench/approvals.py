"""Approvals benchmark: decision-to-resume latency, memory per parked run, store bytes.

    python -m bench.approvals [--n 1000]

1,000 runs are parked, each waiting on a HIGH tool call. Then each approval is decided and
the time from the decision (``DecisionService.decide`` called) to the approved tool starting
is measured: in one process on SQLite and on Redis, and with the decision made in a second
process on Redis. Baselines, measured in the same run: a store signal's round trip in one
process (publish to subscriber) and across two processes (Redis pub/sub), the floor any
cross-process wake-up pays. Also: RSS added per parked run, store bytes per parked run, and
the store calls (and, on SQLite, commits) made between a decision and its tool's start.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from agent_core.approvals import ApprovalPolicy, Authority, DecisionService
from agent_core.audit.trail import Audit
from agent_core.channel import RunEvent
from agent_core.heap import settle_heap
from agent_core.llm.anthropic import AnthropicLLM
from agent_core.llm.budget import BudgetLimits
from agent_core.models import (
    FINAL_STATUSES,
    Approval,
    Decision,
    DecisionKind,
    Plan,
    RiskLevel,
    Run,
    RunKilled,
    RunStatus,
    Subtask,
)
from agent_core.runs.claims import LocalClaims
from agent_core.runs.control import RunControl
from agent_core.runs.executor import ExecutorLimits
from agent_core.runs.host import RunHost
from agent_core.runs.orchestrator import Orchestrator, RunPolicy
from agent_core.store import Store, open_store
from agent_core.testing.redis_server import RedisServer
from agent_core.tools import Tool, ToolContext, ToolRegistry

KEY = "sk-ant-bench"
PATH_RUNS = 20
_INSIDE: ContextVar[bool] = ContextVar("bench_store_call", default=False)
"""Decisions whose store calls are counted (apart from the timed ones)."""
MODEL = "claude-sonnet-4-6"
SCHEMA = {"type": "object", "properties": {"target": {"type": "string"}}, "required": ["target"]}


class QuietChannel:
    """A channel that keeps nothing: what is measured is airlock, not a test recorder."""

    async def notify(self, event: RunEvent) -> None:
        return None

    async def request_decision(self, approval: Approval) -> None:
        return None

    async def ask(self, run: Run, question: str) -> str:
        raise RuntimeError("the benchmark asks no questions")

    async def members_of(self, group: str) -> set[str]:
        return set()


STANDIN_START_SECONDS = 30.0
"""How long the stand-in's process may take to listen (its imports, on a busy machine)."""


@asynccontextmanager
async def standin(latency: float = 0.0) -> AsyncIterator[str]:
    """The stand-in in its own process, ``latency`` seconds added to each reply; yields its
    base URL once it listens (it prints the URL only then)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench._standin", str(latency),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    url = ""
    try:
        async with asyncio.timeout(STANDIN_START_SECONDS):
            url = (await process.stdout.readline()).decode().strip()
        if not url:  # it exited before listening; its error is on stderr
            raise RuntimeError(f"the stand-in exited with {await process.wait()} before listening")
        yield url
    finally:
        if not url and process.returncode is None:  # still starting at the deadline
            process.kill()
        process.stdin.close()
        await process.wait()


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass(kw_only=True)
class Parked:
    store: Store
    runner: RunHost
    service: DecisionService
    approvals: dict[str, str]
    """Run id -> the approval it waits on."""
    started: dict[str, asyncio.Event] = field(default_factory=dict)
    started_ns: dict[str, int] = field(default_factory=dict)
    commits_at_start: dict[str, int] = field(default_factory=dict)
    """Run id -> SQLite commits of the process when its tool started (none on Redis)."""
    rss_per_run: float = 0.0
    llm: AnthropicLLM
    """Closed with the runner."""


async def park(store: Store, base_url: str, n: int) -> Parked:
    started: dict[str, asyncio.Event] = {}
    started_ns: dict[str, int] = {}
    commits_at_start: dict[str, int] = {}
    connection = getattr(store, "_db", None)

    async def restart(arguments: dict[str, Any], context: ToolContext) -> str:
        started_ns[context.run.id] = time.monotonic_ns()
        if connection is not None:
            commits_at_start[context.run.id] = connection.commits
        started[context.run.id].set()
        return "restarted"

    tool = Tool(name="restart", description="Restart a service.", input_schema=SCHEMA,
                risk=RiskLevel.HIGH, handler=restart)  # fmt: skip
    llm = AnthropicLLM(api_key=KEY, base_url=base_url, planner_model=MODEL,
                       executor_model=MODEL, fast_model=MODEL, max_retries=0)  # fmt: skip
    channel = QuietChannel()
    audit = Audit(store=store)
    service = DecisionService(store=store, authority=Authority(admins=["U0ADMIN"]), audit=audit)
    policy = RunPolicy(budget=BudgetLimits(llm_calls=100, tokens=10**9, usd=1e6),
                       executor=ExecutorLimits())  # fmt: skip
    orchestrator = Orchestrator(store=store, llm=llm, tools=ToolRegistry([tool]), channel=channel,
                                policy=policy, workspace=Path("."))  # fmt: skip
    runner = RunHost(store=store, orchestrator=orchestrator, channel=channel,
                     policy=ApprovalPolicy(ttl_seconds=86_400),
                     claims=LocalClaims(store=store))  # fmt: skip
    await runner.start()
    plan = Plan(subtasks=[Subtask(id="s1", description="restart web")])
    runs = [
        await store.create_run(Run(goal="restart web", requester="U0REQ", plan=plan))
        for _ in range(n)
    ]
    for run in runs:
        started[run.id] = asyncio.Event()
    gc.collect()
    before = rss_bytes()
    for run in runs:
        await runner.submit(run.id)
        await runner.wait_for(run.id, {RunStatus.AWAITING_APPROVAL})
    await asyncio.sleep(0)  # let finished run tasks be dropped before measuring
    gc.collect()
    rss = (rss_bytes() - before) / n
    approvals = {a.run_id: a.id for a in await store.list_pending_approvals()}
    parked = Parked(store=store, runner=runner, service=service, approvals=approvals,
                    started=started, started_ns=started_ns, rss_per_run=rss,
                    commits_at_start=commits_at_start, llm=llm)  # fmt: skip
    return parked


async def resume_in_process(parked: Parked) -> list[float]:
    samples = []
    for run_id, approval_id in parked.approvals.items():
        decision = Decision(kind=DecisionKind.APPROVE, by="U0ADMIN")
        t0 = time.monotonic_ns()
        await parked.service.decide(approval_id, decision)
        await parked.started[run_id].wait()
        samples.append((parked.started_ns[run_id] - t0) / 1e6)
        # One at a time: no overlap with the next.
        await parked.runner.wait_for(run_id, FINAL_STATUSES)
    return samples


async def calls_on_path(parked: Parked, runs: int) -> tuple[float, float, float | None]:
    """Median store calls, writes among them, and SQLite commits from a decision to its tool's
    start: every awaited Store method of the process, counted by a wrapper on the instance."""
    store, window = parked.store, [False]
    seen: list[tuple[str, int]] = []
    writes = {"record_decision", "publish", "append_audit", "take_lease", "save_run",
              "consume_approval", "save_tool_call", "renew_lease"}  # fmt: skip
    for name in dir(store):
        method = getattr(store, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(method):
            continue

        def counted(method: Any = method, name: str = name) -> Any:
            async def call(*args: Any, **kwargs: Any) -> Any:
                if not window[0] or _INSIDE.get():  # a store method's own calls count as one
                    return await method(*args, **kwargs)
                seen.append((name, time.monotonic_ns()))
                token = _INSIDE.set(True)
                try:
                    return await method(*args, **kwargs)
                finally:
                    _INSIDE.reset(token)

            return call

        setattr(store, name, counted())
    connection = getattr(store, "_db", None)
    calls: list[int] = []
    written: list[int] = []
    commits: list[int] = []
    for run_id in list(parked.approvals)[:runs]:
        approval_id = parked.approvals.pop(run_id)  # decided here, not measured again
        seen.clear()
        before = connection.commits if connection is not None else 0
        window[0] = True
        await parked.service.decide(approval_id, Decision(kind=DecisionKind.APPROVE, by="U0ADMIN"))
        await parked.started[run_id].wait()
        window[0] = False
        # Only what began before the tool did: the run goes on writing after it.
        path = [name for name, at in seen if at <= parked.started_ns[run_id]]
        calls.append(len(path))
        written.append(sum(name in writes for name in path))
        if connection is not None:
            commits.append(parked.commits_at_start[run_id] - before)
        await parked.runner.wait_for(run_id, FINAL_STATUSES)
    for name in list(vars(store)):
        if callable(vars(store)[name]) and not name.startswith("_"):
            delattr(store, name)  # the class's methods again
    median = statistics.median
    return median(calls), median(written), median(commits) if commits else None


async def signal_round_trip(store: Store, n: int) -> list[float]:
    samples = []
    async with store.subscribe() as signals:
        for i in range(n):
            t0 = time.perf_counter_ns()
            # A kill of no run: the runner listening here ignores it, and it is as big.
            await store.publish(RunKilled(run_id="run_ping", by=f"apr_{i}"))
            await signals.get()
            samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


async def kill_latency(store: Store, base_url: str, runs: int) -> list[float]:
    """Kill a run whose tool is working: milliseconds until its task has ended, status killed."""
    working = asyncio.Event()

    async def forever(arguments: dict[str, Any], context: ToolContext) -> str:
        working.set()
        await asyncio.Event().wait()
        return "unreachable"

    tool = Tool(name="restart", description="Never ends.", input_schema=SCHEMA,
                risk=RiskLevel.LOW, handler=forever, timeout_seconds=3600)  # fmt: skip
    llm = AnthropicLLM(api_key=KEY, base_url=base_url, planner_model=MODEL,
                       executor_model=MODEL, fast_model=MODEL, max_retries=0)  # fmt: skip
    channel = QuietChannel()
    policy = RunPolicy(budget=BudgetLimits(llm_calls=100, tokens=10**9, usd=1e6),
                       executor=ExecutorLimits())  # fmt: skip
    orchestrator = Orchestrator(store=store, llm=llm, tools=ToolRegistry([tool]), channel=channel,
                                policy=policy, workspace=Path("."))  # fmt: skip
    runner = RunHost(
        store=store,
        orchestrator=orchestrator,
        channel=channel,
        policy=ApprovalPolicy(),
        claims=LocalClaims(store=store),
    )
    await runner.start()
    control = RunControl(
        store=store, authority=Authority(admins=["U0ADMIN"]), audit=Audit(store=store)
    )
    plan = Plan(subtasks=[Subtask(id="s1", description="restart web")])
    samples = []
    for _ in range(runs):
        working.clear()
        run = await store.create_run(Run(goal="restart web", requester="U0REQ", plan=plan))
        await runner.submit(run.id)
        task = runner.tasks[run.id]
        await working.wait()
        t0 = time.perf_counter()
        await control.kill(run.id, by="U0ADMIN")
        await asyncio.wait([task])
        samples.append((time.perf_counter() - t0) * 1000)
    await runner.stop()
    await llm.aclose()
    return samples


async def stop(parked: Parked) -> None:
    """Stop the parked runs' host and close its model client (before the loop goes)."""
    await parked.runner.stop()
    await parked.llm.aclose()


async def child(url: str) -> None:
    """The second process: decides (or pings) what stdin names, printing when it began."""
    store = await open_store(url)
    service = DecisionService(store=store, authority=Authority(admins=["U0ADMIN"]),
                              audit=Audit(store=store))  # fmt: skip
    loop = asyncio.get_running_loop()
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        kind, _, ident = line.partition(" ")
        t0 = time.monotonic_ns()
        if kind == "ping":
            await store.publish(RunKilled(run_id="run_ping", by=ident))
        else:
            await service.decide(ident, Decision(kind=DecisionKind.APPROVE, by="U0ADMIN"))
        print(t0, flush=True)
    await store.close()


async def cross_process(parked: Parked, url: str, n_pings: int) -> tuple[list[float], list[float]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.approvals", "--child", url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    pings = []
    async with parked.store.subscribe() as signals:
        for i in range(n_pings):
            process.stdin.write(f"ping apr_{i}\n".encode())
            await signals.get()
            received = time.monotonic_ns()
            pings.append((received - int(await process.stdout.readline())) / 1e6)
    resumes = []
    for run_id, approval_id in parked.approvals.items():
        process.stdin.write(f"decide {approval_id}\n".encode())
        t0 = int(await process.stdout.readline())
        await parked.started[run_id].wait()
        resumes.append((parked.started_ns[run_id] - t0) / 1e6)
        await parked.runner.wait_for(run_id, FINAL_STATUSES)
    process.stdin.close()
    await process.wait()
    return resumes, pings


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


@dataclass(kw_only=True)
class Result:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    samples: dict[str, tuple[list[float], list[float] | None]] = field(default_factory=dict)
    calls: list[tuple[str, float, float, float | None]] = field(default_factory=list)
    """Per store, one process: median store calls, writes and commits, decision to tool."""

    def latency(self, what: str, samples: list[float], baseline: list[float] | None) -> None:
        self.samples[what] = (samples, baseline)
        base = f"{statistics.median(baseline):.3f} / {p99(baseline):.3f}" if baseline else "-"
        self.rows.append((what, f"{statistics.median(samples):.3f}", f"{p99(samples):.3f}", base))


async def measure(n: int) -> tuple[Result, list[tuple[str, float, float]]]:
    # As `airlock serve` and `airlock worker` do once started: what the process made starting
    # is left out of later collections (agent_core.heap). Undone at the end: other benchmarks
    # may share this process.
    settle_heap()
    try:
        return await _measure(n)
    finally:
        gc.unfreeze()


async def _measure(n: int) -> tuple[Result, list[tuple[str, float, float]]]:
    result = Result()
    sizes: list[tuple[str, float, float]] = []
    async with standin() as base_url:
        with tempfile.TemporaryDirectory(prefix="airlock-bench-") as folder:
            path = Path(folder) / "bench.db"
            store = await open_store(f"sqlite:///{path}", poll_interval=0.01)
            parked = await park(store, base_url, n + PATH_RUNS)
            sizes.append(("sqlite", parked.rss_per_run, path.stat().st_size / (n + PATH_RUNS)))
            result.calls.append(("SQLite", *await calls_on_path(parked, PATH_RUNS)))
            baseline = await signal_round_trip(store, n)
            samples = await resume_in_process(parked)
            result.latency("decision -> tool starts, one process, SQLite", samples, baseline)
            await stop(parked)
            result.latency(
                "kill -> run ended (tool working), SQLite",
                await kill_latency(store, base_url, 50),
                None,
            )
            await store.close()
        with RedisServer() as redis:
            store = await open_store(redis.url)
            before = await _redis_memory(redis.url)
            parked = await park(store, base_url, n + PATH_RUNS)
            stored = (await _redis_memory(redis.url) - before) / (n + PATH_RUNS)
            sizes.append(("redis", parked.rss_per_run, stored))
            result.calls.append(("Redis", *await calls_on_path(parked, PATH_RUNS)))
            baseline = await signal_round_trip(store, n)
            samples = await resume_in_process(parked)
            result.latency("decision -> tool starts, one process, Redis", samples, baseline)
            await stop(parked)
            parked = await park(store, base_url, n)
            resumes, pings = await cross_process(parked, redis.url, n)
            result.latency("decision -> tool starts, two processes, Redis", resumes, pings)
            await stop(parked)
            await store.close()
    return result, sizes


async def _redis_memory(url: str) -> int:
    client = Redis.from_url(url)
    try:
        return int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()


def render(result: Result, sizes: list[tuple[str, float, float]], n: int) -> list[Table]:
    latency = Table(title=f"decision to resume, {n} approvals (ms)")
    for column in ("path", "median", "p99", "baseline median / p99"):
        latency.add_column(column, justify="left" if column == "path" else "right")
    for row in result.rows:
        latency.add_row(*row)
    memory = Table(title=f"{n} runs parked on an approval")
    for column in ("store", "RSS per parked run", "store bytes per parked run"):
        memory.add_column(column, justify="left" if column == "store" else "right")
    for name, rss, stored in sizes:
        memory.add_row(name, f"{rss / 1024:.1f} KB", f"{stored / 1024:.2f} KB")
    path = Table(title=f"store calls from a decision to its tool's start, median of {PATH_RUNS}")
    for column in ("store, one process", "calls", "writes", "commits"):
        path.add_column(column, justify="left" if column.startswith("store") else "right")
    for name, calls, writes, commits in result.calls:
        path.add_row(name, f"{calls:g}", f"{writes:g}", "-" if commits is None else f"{commits:g}")
    return [latency, path, memory]


async def main(n: int) -> None:
    result, sizes = await measure(n)
    console = Console(width=120)
    for table in render(result, sizes, n):
        console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="parked runs and approvals")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        asyncio.run(child(arguments.child))
    else:
        asyncio.run(main(arguments.n))
