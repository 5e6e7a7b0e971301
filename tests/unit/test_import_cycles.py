"""No module of airlock imports one that imports it back, even late (inside a function).

A late import hides a cycle from the import-linter layers (they compare packages) but still
ties two modules' loading order together; type-only imports are left out: they never run.
"""

from __future__ import annotations

import grimp


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (Tarjan)."""
    modules = sorted(m for m in graph.modules if not m.startswith("agent_core.testing"))
    known = set(modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & known) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while (top := stack.pop()) != module:
                group.append(top)
            group.append(module)
            if len(group) > 1:
                found.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph("agent_core", "bot", exclude_type_checking_imports=True)
    assert cycles(graph) == []


def test_the_check_finds_a_late_import_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.host", "pkg.claims", "pkg.values"):
        graph.add_module(module)
    graph.add_import(importer="pkg.host", imported="pkg.claims")
    graph.add_import(importer="pkg.claims", imported="pkg.host")  # inside a function
    graph.add_import(importer="pkg.claims", imported="pkg.values")
    assert cycles(graph) == [["pkg.claims", "pkg.host"]]
