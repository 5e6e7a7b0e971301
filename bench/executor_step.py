"""Executor step overhead: airlock's tool loop against a minimal hand-written SDK loop.

    python -m bench.executor_step [--steps 20] [--runs 7]

Both loops talk to the same local Anthropic stand-in through the real SDK and call the
same tool. A step is one model turn that asks for a tool plus that tool call. airlock's
side is a whole run through the orchestrator (its plan preset, so no planning call), with
the SQLite store, a checkpoint after every turn and tool round, budgets and the risk gate.

Reported: the median wall time per step at a scripted model latency of 50 ms (ratio to the
baseline), and the CPU milliseconds airlock adds per step at 0 ms latency (process CPU of
the airlock runs minus the baseline's, per step; the stand-in's own CPU is in both).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
from rich.console import Console
from rich.table import Table

from agent_core.llm.anthropic import AnthropicLLM
from agent_core.llm.budget import BudgetLimits
from agent_core.models import Plan, RiskLevel, Run, RunStatus, Subtask
from agent_core.runs.executor import ExecutorLimits
from agent_core.runs.orchestrator import Orchestrator, RunPolicy
from agent_core.store import Store, open_store
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.channel import RecordingChannel, approve_all
from agent_core.tools import Tool, ToolContext, ToolRegistry

KEY = "sk-ant-bench"
MODEL = "claude-sonnet-4-6"
SYSTEM = "You are an operations agent."
SCHEMA = {"type": "object", "properties": {"target": {"type": "string"}}, "required": ["target"]}


def lookup_output(arguments: dict[str, Any]) -> str:
    return f"{arguments['target']} is healthy; p99 latency 41 ms; 0 errors in the last hour"


def responder(steps: int, latency: float) -> Any:
    """Ask for ``steps`` lookups, one per turn, then answer."""

    def answer(request: RecordedRequest) -> Reply:
        done = sum(1 for m in request.messages if m.get("role") == "assistant")
        if done < steps:
            return tool_use_reply("lookup", {"target": f"host-{done}"}, latency=latency)
        return text_reply("all hosts healthy", latency=latency)

    return answer


async def baseline_run(client: anthropic.AsyncAnthropic, steps: int) -> None:
    """The smallest honest tool loop: call, run the tool, send the result back.

    It caches the system prompt and tools as airlock does, so the stand-in does the same
    work for both and the difference is the loops' own.
    """
    cache = {"type": "ephemeral"}
    tools: list[Any] = [
        {"name": "lookup", "description": "Look up a host.", "input_schema": SCHEMA,
         "cache_control": cache}
    ]  # fmt: skip
    system: list[Any] = [{"type": "text", "text": SYSTEM, "cache_control": cache}]
    messages: list[Any] = [{"role": "user", "content": "check every host"}]
    while True:
        message = await client.messages.create(
            model=MODEL, max_tokens=1024, system=system, tools=tools, messages=messages
        )
        messages.append({"role": "assistant", "content": message.content})
        if message.stop_reason != "tool_use":
            return
        results = [
            {"type": "tool_result", "tool_use_id": b.id, "content": lookup_output(b.input)}
            for b in message.content
            if b.type == "tool_use"
        ]
        messages.append({"role": "user", "content": results})


def registry() -> ToolRegistry:
    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        return lookup_output(arguments)

    tool = Tool(name="lookup", description="Look up a host.", input_schema=SCHEMA,
                risk=RiskLevel.LOW, handler=handler)  # fmt: skip
    return ToolRegistry([tool])


async def airlock_run(orchestrator: Orchestrator, store: Store) -> None:
    plan = Plan(
        subtasks=[Subtask(id="s1", description="check every host", required_tools=["lookup"])]
    )
    run = await store.create_run(Run(goal="check every host", requester="U0BENCH", plan=plan))
    finished = await orchestrator.execute(run.id)
    assert finished.status is RunStatus.COMPLETED, finished.error


@dataclass(kw_only=True)
class Measured:
    wall_per_step: list[float]
    cpu_per_step: list[float]


async def measure(kind: str, steps: int, runs: int, latency: float, folder: Path) -> Measured:
    async with AnthropicStandIn(api_key=KEY, default=responder(steps, latency)) as server:
        client = anthropic.AsyncAnthropic(api_key=KEY, base_url=server.base_url, max_retries=0)
        store = await open_store(f"sqlite:///{folder / f'{kind}-{latency}.db'}")
        llm = AnthropicLLM(
            client=client, planner_model=MODEL, executor_model=MODEL, fast_model=MODEL
        )
        orchestrator = Orchestrator(
            store=store, llm=llm, tools=registry(), channel=RecordingChannel(decider=approve_all()),
            policy=RunPolicy(
                budget=BudgetLimits(llm_calls=10_000, tokens=10**9, usd=10_000.0),
                executor=ExecutorLimits(max_iterations=steps + 5, loop_repeat_limit=steps + 5),
            ),
            workspace=folder,
        )  # fmt: skip
        walls, cpus = [], []
        try:
            for _ in range(runs + 1):  # the first run warms up imports and connections
                wall, cpu = time.perf_counter(), time.process_time()
                if kind == "baseline":
                    await baseline_run(client, steps)
                else:
                    await airlock_run(orchestrator, store)
                walls.append((time.perf_counter() - wall) * 1000 / steps)
                cpus.append((time.process_time() - cpu) * 1000 / steps)
        finally:
            await store.close()
            await client.close()
    return Measured(wall_per_step=walls[1:], cpu_per_step=cpus[1:])


async def main(steps: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="airlock-bench-") as name:
        folder = Path(name)
        slow = {k: await measure(k, steps, runs, 0.05, folder) for k in ("baseline", "airlock")}
        fast = {k: await measure(k, steps, runs, 0.0, folder) for k in ("baseline", "airlock")}
    table = Table(title=f"executor step, {steps} steps x {runs} runs (medians)")
    for column in ("measure", "baseline", "airlock", "airlock vs baseline"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    base, ours = (statistics.median(slow[k].wall_per_step) for k in ("baseline", "airlock"))
    table.add_row(
        "wall ms per step, 50 ms model", f"{base:.2f}", f"{ours:.2f}", f"{ours / base:.3f}x"
    )
    base, ours = (statistics.median(fast[k].wall_per_step) for k in ("baseline", "airlock"))
    table.add_row(
        "wall ms per step, 0 ms model", f"{base:.2f}", f"{ours:.2f}", f"{ours / base:.2f}x"
    )
    base, ours = (statistics.median(fast[k].cpu_per_step) for k in ("baseline", "airlock"))
    table.add_row(
        "CPU ms per step, 0 ms model", f"{base:.2f}", f"{ours:.2f}", f"+{ours - base:.2f} ms"
    )
    Console(width=120).print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="tool calls per run")
    parser.add_argument("--runs", type=int, default=7, help="measured runs per variant")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.steps, arguments.runs))
