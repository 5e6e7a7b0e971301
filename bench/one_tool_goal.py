"""One approved one-tool goal: airlock's wall and CPU against a hand-written SDK loop.

    python -m bench.one_tool_goal [--goals 50] [--langgraph-python PATH]

The goal: the user's message, the model asks for one HIGH (approval-needing) tool call, it is
approved, the tool runs, its result goes back, the model ends its turn. The Anthropic stand-in
runs in a process of its own (its CPU is in neither side), scripted with the model taking
0 ms and then 50 ms per reply; each latency has its own stand-in, shared by both sides.

airlock's side is the goal of ``bench.durable_writes`` (uncounted): the run created with its
plan preset (the goal is one tool call; no planning call), a run host with local claims on
SQLite as ``airlock serve`` runs it, the gate parks the run on its approval, the approver
approves as soon as the run has parked (the person answers at once: what is measured is
airlock, not a person), the run resumes, the tool runs, the model ends its turn. The
baseline, in the same run against the same stand-in: the ``anthropic`` SDK in a loop
(call, see the tool_use, approve it with a function call, run the tool, send the
tool_result, get end_turn), nothing persisted.

Per goal: wall milliseconds and CPU milliseconds of the bench process
(``time.process_time``), medians and p99 over ``--goals`` goals, after one warm-up goal.

With ``--langgraph-python`` (or ``BENCH_LANGGRAPH_PYTHON``), the python of a separate venv
with langgraph, langchain, langchain-anthropic and langgraph-checkpoint-sqlite runs
``bench/peers/langgraph_hitl.py`` against the same stand-in: ``create_agent`` with
``HumanInTheLoopMiddleware`` and ``AsyncSqliteSaver``, interrupted and resumed with an
approval, and the same SDK loop in that venv as its baseline. Without it, no LangGraph rows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
from rich.console import Console
from rich.table import Table

from bench import durable_writes
from bench._standin import KEY
from bench.approvals import SCHEMA, standin

MODEL = durable_writes.MODEL
LATENCIES = (0.0, 0.05)
"""Seconds the scripted model takes per reply: none (airlock's own cost shows), then 50 ms."""
LANGGRAPH_PYTHON = "BENCH_LANGGRAPH_PYTHON"
"""The environment variable naming the LangGraph venv's python when no option does."""
PEER = Path(__file__).with_name("peers") / "langgraph_hitl.py"
PEER_SECONDS_PER_GOAL = 5.0
"""The peer's deadline per goal (both of its sides, a busy machine): it is killed past it."""


@dataclass(kw_only=True)
class Timed:
    """Wall and CPU milliseconds per goal."""

    walls: list[float]
    cpus: list[float]


@dataclass(kw_only=True)
class Compared:
    """One measure of one latency, its baseline's samples beside it."""

    what: str
    samples: list[float]
    baseline: list[float]


def approve(name: str, arguments: dict[str, Any]) -> bool:
    """The person of the baseline, who approves at once."""
    return True


async def restart(arguments: dict[str, Any]) -> str:
    """The tool of the baseline: the same answer as airlock's ``restart``."""
    return f"{arguments['target']} restarted"


async def sdk_goal(client: anthropic.AsyncAnthropic) -> None:
    """The goal as the smallest honest SDK loop: call, approve the tool call, run it, send
    its result, until the model ends its turn."""
    tools: list[Any] = [{"name": "restart", "description": "Restart a service.",
                         "input_schema": SCHEMA}]  # fmt: skip
    messages: list[Any] = [{"role": "user", "content": "restart web"}]
    while True:
        message = await client.messages.create(
            model=MODEL, max_tokens=1024, tools=tools, messages=messages
        )
        if message.stop_reason != "tool_use":
            return
        messages.append({"role": "assistant", "content": message.content})
        results = []
        for block in message.content:
            if block.type == "tool_use":
                allowed = approve(block.name, dict(block.input))
                output = await restart(dict(block.input)) if allowed else "denied"
                results.append({"type": "tool_result", "tool_use_id": block.id,
                                "content": output})  # fmt: skip
        messages.append({"role": "user", "content": results})


async def sdk_goals(base_url: str, goals: int) -> Timed:
    """``goals`` goals one after another through the SDK loop, the first a warm-up."""
    timed = Timed(walls=[], cpus=[])
    async with anthropic.AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0) as client:
        for index in range(goals + 1):
            gc.collect()  # as airlock's side does before each goal
            wall, cpu = time.perf_counter(), time.process_time()
            await sdk_goal(client)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if index:
                timed.walls.append(wall * 1000)
                timed.cpus.append(cpu * 1000)
    return timed


async def airlock_goals(base_url: str, goals: int) -> Timed:
    """``goals`` approved goals through airlock's run host on SQLite, the first a warm-up."""
    measured = await durable_writes.sqlite(base_url, goals, counted=False)
    return Timed(walls=measured.walls, cpus=measured.cpus)


async def langgraph_goals(python: str, base_url: str, goals: int) -> dict[str, Any]:
    """The peer in the LangGraph venv; its JSON: versions, and walls and CPUs of both sides."""
    process = await asyncio.create_subprocess_exec(
        python, str(PEER), "--base-url", base_url, "--goals", str(goals),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(30 + PEER_SECONDS_PER_GOAL * goals):
            out, _ = await process.communicate()
    finally:
        if process.returncode is None:  # past its deadline
            process.kill()
            await process.wait()
    if process.returncode:
        raise RuntimeError(f"the LangGraph peer exited with {process.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


@dataclass(kw_only=True)
class Result:
    """What one run measured, each latency's rows in order, and the peer's versions."""

    rows: list[Compared]
    versions: str = ""


async def measure(goals: int, langgraph_python: str | None = None) -> Result:
    """Both sides (and the peer's two, given its python) at each of :data:`LATENCIES`."""
    result = Result(rows=[])
    for latency in LATENCIES:
        model = f"{latency * 1000:.0f} ms model"
        async with standin(latency) as base_url:
            sdk = await sdk_goals(base_url, goals)
            airlock = await airlock_goals(base_url, goals)
            peer = await langgraph_goals(langgraph_python, base_url, goals) if langgraph_python \
                else None  # fmt: skip
        result.rows += [
            Compared(what=f"wall per goal, {model}, airlock vs SDK loop", samples=airlock.walls,
                     baseline=sdk.walls),
            Compared(what=f"CPU per goal, {model}, airlock vs SDK loop", samples=airlock.cpus,
                     baseline=sdk.cpus),
        ]  # fmt: skip
        if peer is not None:
            lg, base = peer["langgraph"], peer["sdk"]
            result.versions = ", ".join(f"{k} {v}" for k, v in peer["versions"].items())
            result.rows += [
                Compared(what=f"wall per goal, {model}, LangGraph HITL vs its SDK loop",
                         samples=lg["walls"], baseline=base["walls"]),
                Compared(what=f"CPU per goal, {model}, LangGraph HITL vs its SDK loop",
                         samples=lg["cpus"], baseline=base["cpus"]),
            ]  # fmt: skip
    return result


def p99(samples: list[float]) -> float:
    """The 99th percentile, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def render(result: Result, goals: int) -> Table:
    """Medians and p99s of each side, and the ratio of the medians."""
    table = Table(title=f"one approved one-tool goal, {goals} goals; load average "
                  f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    for column in ("what", "median ms", "p99 ms", "baseline ms", "baseline p99", "ratio"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for row in result.rows:
        median, base = statistics.median(row.samples), statistics.median(row.baseline)
        table.add_row(row.what, f"{median:.2f}", f"{p99(row.samples):.2f}", f"{base:.2f}",
                      f"{p99(row.baseline):.2f}", f"{median / base:.2f}x")  # fmt: skip
    if result.versions:
        table.caption = result.versions
    return table


async def main(goals: int, langgraph_python: str | None) -> None:
    load = os.getloadavg()[0]
    result = await measure(goals, langgraph_python)
    console = Console(width=130)
    console.print(render(result, goals))
    console.print(f"load average {load:.2f} at start")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=50, help="goals measured per side")
    parser.add_argument("--langgraph-python", default=os.environ.get(LANGGRAPH_PYTHON),
                        help=f"python of a venv with LangGraph (default ${LANGGRAPH_PYTHON}); "
                        "without it, no LangGraph rows")  # fmt: skip
    arguments = parser.parse_args()
    if arguments.goals < 1:
        sys.exit("--goals must be at least 1")
    asyncio.run(main(arguments.goals, arguments.langgraph_python))
