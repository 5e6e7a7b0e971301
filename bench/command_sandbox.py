"""Start-up cost of the command sandbox: ``echo hi`` through ``run_command``, with and without.

    python -m bench.command_sandbox [--n 50]

Both sides call the real ``run_command`` tool (its handler, so no model or gate in the way)
in the same workspace: one with the sandbox (namespaces, the file system view, no
capabilities), one with ``AIRLOCK_COMMAND_SANDBOX=off`` (``/bin/sh -c`` in a process group,
as before). Calls alternate between the two, so that load on the machine hits both alike.
Reported: the median and p99 wall time of a call, in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agent_core.channel import RunEvent
from agent_core.models import Approval, Run
from agent_core.tools import Tool, ToolContext
from agent_core.tools.builtins import run_command_tool
from agent_core.tools.sandbox import CommandSandbox

__all__ = ["measure"]


class _Nobody:
    """A channel nobody is on: ``run_command`` never asks anyone."""

    async def notify(self, event: RunEvent) -> None:
        return None

    async def request_decision(self, approval: Approval) -> None:
        raise AssertionError("run_command asks nobody")

    async def ask(self, run: Run, question: str) -> str:
        raise AssertionError("run_command asks nobody")

    async def members_of(self, group: str) -> set[str]:
        return set()


async def _timed(tool: Tool, context: ToolContext) -> float:
    started = time.perf_counter()
    output = await tool.handler({"command": "echo hi"}, context)
    took = (time.perf_counter() - started) * 1000
    assert output == "hi\n\n[exit code 0]", output
    return took


async def measure(n: int) -> dict[str, list[float]]:
    """Wall times in ms of ``n`` calls each: ``sandboxed`` and ``plain``."""
    with tempfile.TemporaryDirectory(prefix="airlock-bench-") as folder:
        workspace = Path(folder)
        context = ToolContext(run=Run(goal="bench", requester="U0BENCH"), workspace=workspace,
                              channel=_Nobody())  # fmt: skip
        tools = {
            "sandboxed": run_command_tool(workspace=workspace, sandbox=CommandSandbox()),
            "plain": run_command_tool(workspace=workspace, sandbox=CommandSandbox(mode="off")),
        }
        samples: dict[str, list[float]] = {name: [] for name in tools}
        for tool in tools.values():  # warm-up: the sandbox's check, the page cache
            await _timed(tool, context)
        for _ in range(n):
            for name, tool in tools.items():
                samples[name].append(await _timed(tool, context))
    return samples


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def main(n: int) -> None:
    samples = await measure(n)
    table = Table(title=f"run_command 'echo hi', {n} calls each (ms)")
    for column in ("how", "median", "p99"):
        table.add_column(column, justify="left" if column == "how" else "right")
    for name, times in samples.items():
        table.add_row(name, f"{statistics.median(times):.2f}", f"{p99(times):.2f}")
    added = statistics.median(samples["sandboxed"]) - statistics.median(samples["plain"])
    table.caption = f"the sandbox adds {added:.2f} ms per command (medians)"
    Console(width=100).print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="calls of each kind")
    asyncio.run(main(parser.parse_args().n))
