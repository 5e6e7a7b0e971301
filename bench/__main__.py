"""Every airlock benchmark in one run, printed as one table.

    python -m bench [--quick] [--langgraph-python PATH]        (or: make bench)

Each row shows a median, its p99 where it has one, the baseline measured in the same run
and the ratio of the two. The machine, the load average at start and end (other work on
the machine skews latencies) and the wall time are printed with it. The LangGraph rows of
one_tool_goal need the python of a venv with LangGraph (``--langgraph-python`` or
``BENCH_LANGGRAPH_PYTHON``; docs/benchmarks.md); without one they are left out.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import _suite
from bench._suite import Line
from bench.one_tool_goal import LANGGRAPH_PYTHON

_FORMATS = {"ms": "{:.2f} ms", "s": "{:.1f} s", "MB": "{:,.0f} MB", "/s": "{:,.0f}/s",
            "recall": "{:.3f}", "": "{:.1f}", "B": "{:,.0f} B", "KB": "{:.2f} KB",
            "share": "{:.0%}", "$": "${:.4f}"}  # fmt: skip


def machine() -> str:
    """Cores, CPU model and memory of this machine, from /proc."""
    models = [line.split(":", 1)[1].strip() for line in _proc("cpuinfo") if "model name" in line]
    cpu = models[0] if models else "unknown CPU"
    kb = next((int(line.split()[1]) for line in _proc("meminfo") if line.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} cores, {cpu}, {kb / 1024**2:.1f} GiB RAM"


def _proc(name: str) -> list[str]:
    return Path(f"/proc/{name}").read_text().splitlines()


def load_average() -> str:
    """The 1-minute load average."""
    return _proc("loadavg")[0].split()[0]


def benchmarks(
    quick: bool, langgraph_python: str | None = None
) -> list[tuple[str, Callable[[], list[Line]]]]:
    """Each benchmark with the sizes this run uses; ``quick`` shrinks them for a smoke test;
    ``langgraph_python`` adds LangGraph's rows to one_tool_goal."""
    n = 200 if quick else 1000
    return [
        ("slack_ack", lambda: _suite.slack_ack_lines(n)),
        ("executor_step", lambda: _suite.executor_lines(20, 3 if quick else 7)),
        (
            "one_tool_goal",
            lambda: _suite.one_tool_goal_lines(10 if quick else 50, langgraph_python),
        ),
        ("command_sandbox", lambda: _suite.command_sandbox_lines(20 if quick else 50)),
        ("approvals", lambda: _suite.approvals_lines(n)),
        ("store", lambda: _suite.store_lines(n)),
        ("durable_writes", lambda: _suite.durable_writes_lines(10 if quick else 30)),
        ("memory", lambda: _suite.memory_lines(1000 if quick else 3000, (10_000, 100_000))),
        (
            "memory_recall",
            lambda: _suite.recall_lines(
                10_000 if quick else 100_000, n // 2, 1_000 if quick else 5_000
            ),
        ),
        ("observability", lambda: _suite.observability_lines(20, 3 if quick else 10)),
        ("prompt_cache", lambda: _suite.prompt_cache_lines(5)),
        ("redaction", lambda: _suite.redaction_lines(50 if quick else 300)),
        ("scale_out", lambda: _suite.scale_out_lines(50 if quick else 200, 10 if quick else 30)),
    ]


def render(lines: list[Line], title: str) -> Table:
    """The one table: benchmark, what, median, p99, baseline, ratio."""
    table = Table(title=title)
    for column in ("benchmark", "what", "median", "p99", "baseline", "ratio"):
        table.add_column(column, justify="left" if column in ("benchmark", "what") else "right")
    for line in lines:
        table.add_row(line.benchmark, line.what, *_cells(line))
    return table


def _cells(line: Line) -> tuple[str, str, str, str]:
    if line.median is None:
        return (line.note, "", "", "")
    fmt = _FORMATS[line.unit]
    p99 = "" if line.p99 is None else fmt.format(line.p99)
    if line.baseline is None:
        return (fmt.format(line.median), p99, "", "")
    ratio = f"{line.median / line.baseline:.2f}x" if line.baseline else ""
    return (fmt.format(line.median), p99, fmt.format(line.baseline), ratio)


def main(quick: bool, langgraph_python: str | None = None) -> None:
    progress = Console(stderr=True)
    start, load = time.perf_counter(), load_average()
    lines: list[Line] = []
    for name, measure in benchmarks(quick, langgraph_python):
        began = time.perf_counter()
        lines += measure()
        progress.log(f"{name}: {time.perf_counter() - began:.0f} s")
    took = time.perf_counter() - start
    title = (
        f"airlock benchmarks ({'quick' if quick else 'full'}), {machine()}; {took:.0f} s, "
        f"load average {load} at start, {load_average()} at end"
    )
    Console(width=150).print(render(lines, title))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--langgraph-python", default=os.environ.get(LANGGRAPH_PYTHON),
                        help="python of a venv with LangGraph, for one_tool_goal's LangGraph "
                        f"rows (default ${LANGGRAPH_PYTHON}); without it, none")  # fmt: skip
    arguments = parser.parse_args()
    main(arguments.quick, arguments.langgraph_python)
