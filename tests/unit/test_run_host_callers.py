"""Outside the agent, every run host and every store is alike: no branch on a concrete class.

What differs between `airlock serve`, `airlock worker` and `airlock run` (which runs they
take, how they hold them) is the host's claims strategy, chosen once in agent_core/airlock.py;
a caller that asked "is this a worker?" or "is this Redis?" would grow a fifth mode. The
front ends (bot/) and the benchmarks (bench/) are checked; the tests, which take the agent
apart on purpose, are not.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import agent_core.runs.claims
import agent_core.runs.host
import agent_core.runs.leased
import agent_core.store.base
import agent_core.store.redis
import agent_core.store.run_queue
import agent_core.store.sqlite

REPO = Path(__file__).resolve().parents[2]
OUTSIDE = ("bot", "bench")
MODULES = (agent_core.runs.host, agent_core.runs.claims, agent_core.runs.leased,
           agent_core.store.base, agent_core.store.sqlite, agent_core.store.redis,
           agent_core.store.run_queue)  # fmt: skip
CLASSES = {
    name
    for module in MODULES
    for name, value in vars(module).items()
    if inspect.isclass(value) and value.__module__ == module.__name__
}
"""The host, its claims and the stores: what a caller could be tempted to branch on."""


def names(node: ast.expr) -> set[str]:
    """The class names an ``isinstance`` second argument mentions (``A``, ``m.A``, ``(A, B)``)."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def test_nothing_outside_the_agent_checks_the_class_of_a_host_or_a_store() -> None:
    assert {"RunHost", "LocalClaims", "LeasedClaims", "SqliteStore", "RedisStore"} <= CLASSES
    found = []
    for path in sorted(p for folder in OUTSIDE for p in (REPO / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"isinstance", "issubclass"}
                and len(node.args) == 2
                and (hit := names(node.args[1]) & CLASSES)
            ):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {sorted(hit)}")
    assert found == []


def test_the_check_finds_one() -> None:
    """The walk above does see such a check where there is one."""
    tree = ast.parse("if isinstance(runs, (hosts.RunHost, Other)): pass")
    [call] = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert names(call.args[1]) & CLASSES == {"RunHost"}
