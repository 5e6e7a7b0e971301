"""Store calls and durable writes of one approved one-tool goal, with wall and CPU per goal.

    python -m bench.durable_writes [--goals 30]

One goal, as a person sees it: the run is created (the user's message), a run host (local
claims, as ``airlock serve`` on SQLite) plans nothing (the plan is preset), the model asks
for one HIGH tool call, the run parks on its approval, an approver approves, the tool runs,
its result goes back and the model ends its turn. The real orchestrator, run host, risk
gate, decision service, audit trail and tool-call journal; the Anthropic stand-in in a
process of its own (its CPU is not counted), with no model latency.

Counted per goal: every call on the store (by a counting wrapper around it), and on SQLite
every write transaction committed (each one an fsync of the WAL under ``synchronous=FULL``);
on Redis, the commands the server processed. Wall and CPU milliseconds per goal, from the
user's message to the run's final status, the approval included but the wait for the
person not: the approval is given as soon as the run has parked.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from agent_core.approvals import ApprovalPolicy, Authority, DecisionService
from agent_core.audit.trail import Audit
from agent_core.channel import RunEvent, RunFinished
from agent_core.llm.anthropic import AnthropicLLM
from agent_core.llm.budget import BudgetLimits
from agent_core.models import Approval, Decision, DecisionKind, Plan, RiskLevel, Run, Subtask
from agent_core.runs.claims import LocalClaims
from agent_core.runs.executor import ExecutorLimits
from agent_core.runs.host import RunHost
from agent_core.runs.orchestrator import Orchestrator, RunPolicy
from agent_core.store import Store, open_store
from agent_core.store.sqlite import SqliteStore
from agent_core.testing.redis_server import RedisServer
from agent_core.tools import Tool, ToolContext, ToolRegistry
from bench._standin import KEY
from bench.approvals import SCHEMA, standin

MODEL = "claude-sonnet-4-6"


class CountingStore:
    """The store, with every awaited call on it counted by method name."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await attr(*args, **kwargs)

        return counted


@dataclass(kw_only=True)
class Goals:
    """The channel of the benchmark: it keeps nothing, and says when a run asks or ends."""

    asked: dict[str, asyncio.Event] = field(default_factory=dict)
    finished: dict[str, asyncio.Event] = field(default_factory=dict)
    approvals: dict[str, str] = field(default_factory=dict)
    """Run id -> the approval it asked for: the id an Approve button carries."""

    def expect(self, run_id: str) -> None:
        self.asked[run_id], self.finished[run_id] = asyncio.Event(), asyncio.Event()

    async def notify(self, event: RunEvent) -> None:
        if isinstance(event, RunFinished):
            self.finished[event.run.id].set()

    async def request_decision(self, approval: Approval) -> None:
        self.approvals[approval.run_id] = approval.id
        self.asked[approval.run_id].set()

    async def ask(self, run: Run, question: str) -> str:
        raise RuntimeError("the benchmark asks no questions")

    async def members_of(self, group: str) -> set[str]:
        return set()


@dataclass(kw_only=True)
class Measured:
    """Per goal: store calls (by method), durable writes, wall and CPU milliseconds."""

    calls: list[Counter[str]] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    hops: list[float] = field(default_factory=list)
    """SQLite: operations run on the connection's thread (a signal poll included when one
    fell in the goal)."""
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)

    @property
    def store_calls(self) -> float:
        return statistics.median(sum(c.values()) for c in self.calls)


async def measure(
    inner: Store,
    base_url: str,
    goals: int,
    writes: Callable[[], Any],
    hops: Callable[[], int] = lambda: 0,
    at_once: int = 1,
    counted: bool = True,
) -> Measured:
    """``goals`` rounds one after another on ``inner`` (closed after), each of ``at_once``
    goals at the same time, measured per goal; ``writes`` reads the durable-write counter
    (awaited when it is a coroutine), ``hops`` the thread hops. ``counted=False`` leaves the
    store calls uncounted, so the wrapper's own CPU is not in the wall and CPU measured."""
    counting = CountingStore(inner)
    store = cast(Store, counting) if counted else inner
    channel = Goals()

    async def restart(arguments: dict[str, Any], context: ToolContext) -> str:
        return f"{arguments['target']} restarted"

    tool = Tool(name="restart", description="Restart a service.", input_schema=SCHEMA,
                risk=RiskLevel.HIGH, handler=restart)  # fmt: skip
    llm = AnthropicLLM(api_key=KEY, base_url=base_url, planner_model=MODEL,
                       executor_model=MODEL, fast_model=MODEL, max_retries=0)  # fmt: skip
    orchestrator = Orchestrator(
        store=store, llm=llm, tools=ToolRegistry([tool]), channel=channel,
        policy=RunPolicy(budget=BudgetLimits(llm_calls=100, tokens=10**9, usd=1e6),
                         executor=ExecutorLimits()),
        workspace=Path("."),
    )  # fmt: skip
    host = RunHost(store=store, orchestrator=orchestrator, channel=channel,
                   policy=ApprovalPolicy(ttl_seconds=3600),
                   claims=LocalClaims(store=store))  # fmt: skip
    service = DecisionService(store=store, authority=Authority(admins=["U0ADMIN"]),
                              audit=Audit(store=store))  # fmt: skip
    await host.start()
    measured = Measured()
    plan = Plan(subtasks=[Subtask(id="s1", description="restart web")])

    async def goal() -> None:
        run = await store.create_run(Run(goal="restart web", requester="U0REQ", plan=plan))
        channel.expect(run.id)
        await host.submit(run.id)
        await channel.asked[run.id].wait()
        await _ended(host, run.id)  # parked
        approval = channel.approvals.pop(run.id)
        await service.decide(approval, Decision(kind=DecisionKind.APPROVE, by="U0ADMIN"))
        await channel.finished[run.id].wait()
        await _ended(host, run.id)

    try:
        for index in range(goals + 1):  # the first warms up imports and connections
            gc.collect()
            counting.calls.clear()
            before, hopped = await _read(writes), hops()
            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(goal() for _ in range(at_once)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if index:
                calls = Counter({k: v // at_once for k, v in counting.calls.items()})
                measured.calls.append(calls)
                measured.writes.append((await _read(writes) - before) / at_once)
                measured.hops.append((hops() - hopped) / at_once)
                measured.walls.append(wall * 1000 / at_once)
                measured.cpus.append(cpu * 1000 / at_once)
    finally:
        await host.stop()
        await llm.aclose()
        await inner.close()
    return measured


async def _read(counter: Callable[[], Any]) -> int:
    value = counter()
    return int(await value if inspect.isawaitable(value) else value)


async def _ended(host: RunHost, run_id: str) -> None:
    """Until the run's task in ``host`` (if it has one) has ended, its lease let go."""
    while (task := host.tasks.get(run_id)) is not None:
        await asyncio.wait([task])
        await asyncio.sleep(0)  # its done-callbacks and the release it spawned


async def sqlite(base_url: str, goals: int, at_once: int = 1, *, counted: bool = True) -> Measured:
    with tempfile.TemporaryDirectory(prefix="airlock-bench-") as folder:
        store = await SqliteStore.open(Path(folder) / "bench.db")
        db = store._db
        return await measure(store, base_url, goals, lambda: db.commits,
                             lambda: getattr(db, "hops", 0), at_once=at_once,
                             counted=counted)  # fmt: skip


async def redis(base_url: str, goals: int) -> Measured:
    with RedisServer() as server:
        client = Redis.from_url(server.url)

        async def commands() -> int:
            stats = await client.info("stats")
            return int(stats["total_commands_processed"])

        try:
            return await measure(await open_store(server.url), base_url, goals, commands)
        finally:
            await client.aclose()


AT_ONCE = 8
"""Goals at the same time in the concurrent rounds (the durable writes they share)."""


async def run_all(goals: int, *, with_redis: bool = True) -> dict[str, Measured]:
    async with standin() as base_url:
        results = {"SQLite": await sqlite(base_url, goals)}
        results[f"SQLite, {AT_ONCE} at once"] = await sqlite(base_url, goals, AT_ONCE)
        if with_redis:
            results["Redis"] = await redis(base_url, goals)
    return results


def render(results: dict[str, Measured], goals: int) -> list[Table]:
    summary = Table(title=f"one approved one-tool goal, {goals} goals (medians per goal)")
    for column in ("store", "store calls", "thread hops", "durable writes", "wall ms", "CPU ms"):
        summary.add_column(column, justify="left" if column == "store" else "right")
    for name, m in results.items():
        writes, sqlite = statistics.median(m.writes), name.startswith("SQLite")
        what = f"{writes:.1f}" if sqlite else f"({writes:.0f} commands)"
        hops = f"{statistics.median(m.hops):.1f}" if sqlite else ""
        wall, cpu = statistics.median(m.walls), statistics.median(m.cpus)
        summary.add_row(name, f"{m.store_calls:.0f}", hops, what, f"{wall:.2f}", f"{cpu:.2f}")
    calls = Table(title="store calls of one goal, by method")
    calls.add_column("method")
    for name in results:
        calls.add_column(name, justify="right")
    methods = sorted({k for m in results.values() for k in m.calls[-1]})
    for method in methods:
        calls.add_row(method, *(str(m.calls[-1][method]) for m in results.values()))
    return [summary, calls]


async def main(goals: int) -> None:
    results = await run_all(goals)
    console = Console(width=120)
    for table in render(results, goals):
        console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=30, help="goals measured per store")
    asyncio.run(main(parser.parse_args().goals))
