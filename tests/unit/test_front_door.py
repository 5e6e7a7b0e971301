"""The front ends come in by the front door: ``agent_core``'s public names, nothing deeper.

``bot/`` imports the package (``from agent_core import ...``) and the stand-ins of
``agent_core.testing`` (the demo), never a module of the agent by its path, so what a
front end can reach is the one list in ``agent_core/__init__.py`` and the agent's modules
can move without breaking a front end. ``make lint`` holds the same rule (import-linter);
this test names every import that breaks it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import agent_core

REPO = Path(__file__).resolve().parents[2]
ALLOWED = {"agent_core", "agent_core.testing"}
HEAVY = {"faiss", "torch", "sentence_transformers"}
MEMORY = {"AgentMemory", "LongTermMemory"}
"""The public names that import FAISS (and, once embedding, torch)."""


def imports_past_the_door(source: str, where: str) -> list[str]:
    """Each import in ``source`` of an agent_core module other than the allowed two."""
    found = []
    for node in ast.walk(ast.parse(source, filename=where)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found += [
            f"{where}:{node.lineno} {module}"
            for module in modules
            if module.split(".")[0] == "agent_core" and module not in ALLOWED
        ]
    return found


def test_the_front_ends_import_only_the_package_and_its_stand_ins() -> None:
    found = []
    for path in sorted((REPO / "bot").rglob("*.py")):
        found += imports_past_the_door(path.read_text(), str(path.relative_to(REPO)))
    assert found == []


def test_the_walk_finds_each_way_past_the_door() -> None:
    source = (
        "import agent_core\n"
        "from agent_core import Airlock\n"
        "from agent_core.testing import SlackStandIn\n"
        "from agent_core.runs.host import RunHost\n"
        "import agent_core.store.sqlite\n"
        "if TYPE_CHECKING:\n"
        "    from agent_core.memory.service import AgentMemory\n"
        "def later():\n"
        "    from agent_core.testing.slack_server import SlackCall\n"
    )
    assert imports_past_the_door(source, "x.py") == [
        "x.py:4 agent_core.runs.host",
        "x.py:5 agent_core.store.sqlite",
        "x.py:7 agent_core.memory.service",
        "x.py:9 agent_core.testing.slack_server",
    ]


def test_every_public_name_resolves_and_is_listed() -> None:
    for name in agent_core.__all__:
        assert getattr(agent_core, name) is not None, name
    assert set(agent_core.__all__) <= set(dir(agent_core))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = agent_core.nothing_here  # type: ignore[attr-defined]


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split()) & HEAVY


@pytest.mark.processes
def test_importing_the_package_and_the_front_ends_imports_no_faiss_nor_torch() -> None:
    light = sorted(set(agent_core.__all__) - MEMORY)
    assert _loaded_after("import agent_core") == set()
    assert _loaded_after(f"import agent_core\nfor n in {light!r}: getattr(agent_core, n)") == set()
    assert _loaded_after("import bot.cli.main, bot.slack.server, bot.cli.worker") == set()


@pytest.mark.processes
def test_the_memory_names_do_import_faiss() -> None:
    """The probe above can fail: memory's names pay for FAISS, when first used."""
    assert "faiss" in _loaded_after("import agent_core\nagent_core.LongTermMemory")
