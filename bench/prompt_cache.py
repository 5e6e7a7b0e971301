"""Prompt cache: the share of input tokens read from the cache on a five-step run.

    python -m bench.prompt_cache [--steps 5]

A run goes through the real orchestrator with every built-in tool (so the system prompt and
tool definitions are airlock's own) against the local Anthropic stand-in, which accounts a
prompt cache as the API does (prefix entries, breakpoints, a 20-block look-back and the
1,024-token minimum of Sonnet). Each step reads one workspace file of about 1.5 KB.

The baseline is the same requests sent again, in the same order, to a fresh stand-in with
the conversation's breakpoint removed: the placement airlock had before (tools and system
only). Dollars are the input side of the run at the executor model's list price.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
from rich.console import Console
from rich.table import Table

from agent_core.config import DEFAULT_PRICES, Settings
from agent_core.llm.anthropic import AnthropicLLM, price_for
from agent_core.llm.budget import BudgetLimits
from agent_core.models import Plan, Run, RunStatus, Subtask
from agent_core.runs.executor import ExecutorLimits
from agent_core.runs.orchestrator import Orchestrator, RunPolicy
from agent_core.store import open_store
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.channel import RecordingChannel, approve_all
from agent_core.tools import ToolRegistry
from agent_core.tools.builtins import builtin_tools

KEY = "sk-ant-bench"
MODEL = "claude-sonnet-4-6"
MIN_CACHEABLE = 1024
"""Sonnet's minimum cacheable prompt, in tokens."""
RUNS = 2
"""The first run meets a cold cache; the second starts within the first one's 5 minutes."""
WRITE, READ = 1.25, 0.1
"""Price of a 5-minute cache write and of a cache read, as multiples of plain input."""


@dataclass(kw_only=True)
class Tokens:
    """Input-side tokens of a run, summed over its model calls."""

    plain: int = 0
    written: int = 0
    read: int = 0

    def add(self, usage: Any) -> None:
        self.plain += usage.input_tokens
        self.written += usage.cache_creation_input_tokens or 0
        self.read += usage.cache_read_input_tokens or 0

    @property
    def total(self) -> int:
        return self.plain + self.written + self.read

    @property
    def read_share(self) -> float:
        return self.read / self.total if self.total else 0.0

    def dollars(self, per_million: float) -> float:
        return (self.plain + self.written * WRITE + self.read * READ) * per_million / 1e6


@dataclass(kw_only=True)
class Measured:
    airlock: list[Tokens]
    """Each run's tokens: the first on a cold cache, the next within the cache's 5 minutes."""
    before: list[Tokens]
    """The same requests with only the tools and system breakpoints."""
    calls: int
    """Model calls per run."""
    price: float
    """Input dollars per million tokens of the executor model."""


def responder(steps: int) -> Any:
    """Read ``steps`` files, one per turn, then answer."""

    def answer(request: RecordedRequest) -> Reply:
        done = sum(1 for m in request.messages if m.get("role") == "assistant")
        if done < steps:
            return tool_use_reply("read_file", {"path": f"logs/host-{done}.log"})
        return text_reply("every host is healthy")

    return answer


def workspace(folder: Path, steps: int) -> Path:
    logs = folder / "workspace" / "logs"
    logs.mkdir(parents=True)
    for i in range(steps):
        lines = [f"2026-12-05T06:{m:02d}:00Z host-{i} nginx 200 GET /health 3ms" for m in range(30)]
        (logs / f"host-{i}.log").write_text("\n".join(lines) + "\n")
    return folder / "workspace"


def without_conversation_breakpoints(body: dict[str, Any]) -> dict[str, Any]:
    sent = copy.deepcopy(body)
    for message in sent["messages"]:
        if isinstance(message["content"], list):
            for block in message["content"]:
                block.pop("cache_control", None)
    return sent


async def measure(steps: int) -> Measured:
    with tempfile.TemporaryDirectory(prefix="airlock-bench-") as name:
        folder = Path(name)
        settings = Settings(_env_file=None, workspace_dir=workspace(folder, steps))
        async with AnthropicStandIn(
            api_key=KEY, default=responder(steps), min_cacheable_tokens=MIN_CACHEABLE
        ) as server:
            client = anthropic.AsyncAnthropic(api_key=KEY, base_url=server.base_url, max_retries=0)
            store = await open_store(f"sqlite:///{folder / 'cache.db'}")
            llm = AnthropicLLM(
                client=client, planner_model=MODEL, executor_model=MODEL, fast_model=MODEL
            )
            orchestrator = Orchestrator(
                store=store, llm=llm, tools=ToolRegistry(builtin_tools(settings)),
                channel=RecordingChannel(decider=approve_all()),
                policy=RunPolicy(
                    budget=BudgetLimits(llm_calls=1000, tokens=10**9, usd=1000.0),
                    executor=ExecutorLimits(max_iterations=steps + 5, loop_repeat_limit=steps + 5),
                ),
                workspace=settings.effective_workspace_dir,
            )  # fmt: skip
            try:
                for _ in range(RUNS):
                    plan = Plan(subtasks=[Subtask(id="s1", description="check every host's log",
                                                  required_tools=["read_file"])])  # fmt: skip
                    run = await store.create_run(Run(goal="check every host", requester="U0B",
                                                     plan=plan))  # fmt: skip
                    finished = await orchestrator.execute(run.id)
                    assert finished.status is RunStatus.COMPLETED, finished.error
            finally:
                await store.close()
                await client.close()
            bodies = [r.body or {} for r in server.message_requests()]
            usages = [anthropic.types.Usage.model_validate(r["usage"]) for r in server.replies]
        calls = len(bodies) // RUNS
        replayed = []
        async with (
            AnthropicStandIn(
                api_key=KEY, default=lambda _: text_reply("ok"), min_cacheable_tokens=MIN_CACHEABLE
            ) as replay,
            anthropic.AsyncAnthropic(
                api_key=KEY, base_url=replay.base_url, max_retries=0
            ) as client,
        ):
            for body in bodies:
                message = await client.messages.create(**without_conversation_breakpoints(body))
                replayed.append(message.usage)
    price = price_for(MODEL, DEFAULT_PRICES)
    assert price is not None
    return Measured(airlock=per_run(usages, calls), before=per_run(replayed, calls),
                    calls=calls, price=price.input)  # fmt: skip


def per_run(usages: list[anthropic.types.Usage], calls: int) -> list[Tokens]:
    runs = []
    for start in range(0, len(usages), calls):
        tokens = Tokens()
        for usage in usages[start : start + calls]:
            tokens.add(usage)
        runs.append(tokens)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    steps = parser.parse_args().steps
    measured = asyncio.run(measure(steps))
    table = Table(title=f"prompt cache, {steps}-step run, {measured.calls} model calls, {MODEL}")
    for column in ("placement, cache", "plain", "written", "read", "read share", "input $"):
        table.add_column(column, justify="right")
    for label, runs in (("before: tools+system", measured.before),
                        ("airlock: + conversation", measured.airlock)):  # fmt: skip
        for when, tokens in zip(("cold", "warm"), runs, strict=True):
            table.add_row(f"{label}, {when}", f"{tokens.plain:,}", f"{tokens.written:,}",
                          f"{tokens.read:,}", f"{tokens.read_share:.0%}",
                          f"${tokens.dollars(measured.price):.4f}")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
