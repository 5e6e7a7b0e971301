"""`airlock memory add|search|forget|stats|rebuild`, run as the terminal runs them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_core.config import Settings, env_name
from agent_core.memory.embedder import Embedder
from bot.cli.main import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> CliRunner:
    """The CLI on a data folder of its own (``embedder``: the model is known to load)."""
    for name in [env_name(field) for field in Settings.model_fields]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRLOCK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def airlock(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, ["memory", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_add_search_stats_forget_and_rebuild(cli: CliRunner) -> None:
    added = airlock(cli, "add", "staging deploys go through the deploy-web MCP tool",
                    "--scope", "channel:C0OPS", "--type", "procedural")  # fmt: skip
    memory_id = re.search(r"(mem_[0-9a-f]+)", added)
    assert memory_id is not None and "channel:C0OPS" in added
    airlock(cli, "add", "the finance team orders lunch on Fridays")
    found = airlock(cli, "search", "how do we deploy the web app", "-k", "1")
    assert memory_id.group(1) in found and "procedural" in found
    stats = airlock(cli, "stats")
    assert "channel:C0OPS" in stats and "workspace" in stats
    rebuilt = airlock(cli, "rebuild")
    assert "channel:C0OPS: 1 vectors (exact)" in rebuilt
    assert memory_id.group(1) in airlock(cli, "forget", memory_id.group(1))
    assert memory_id.group(1) not in airlock(cli, "search", "deploy the web app")
    missing = cli.invoke(app, ["memory", "forget", memory_id.group(1)])
    assert missing.exit_code == 1 and "no memory" in missing.output


def test_a_bad_scope_is_refused_with_exit_2(cli: CliRunner) -> None:
    result = cli.invoke(app, ["memory", "add", "x", "--scope", "somewhere"])
    assert result.exit_code == 2 and "is not a scope" in result.output
