"""The audit key: required where the trail is written for real, never stored with the trail,
never shown, and one key for every process (another key, or none, writes nothing)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_core.audit.chain import MIN_KEY_CHARS, AuditKey
from agent_core.config import load_settings
from agent_core.errors import ConfigError
from agent_core.models import AuditEvent, Run, RunStatus
from agent_core.store import open_store
from agent_core.testing.redis_server import free_port
from bot.cli.main import app
from tests.e2e.test_serve import clean_env
from tests.support import TEST_AUDIT_KEY

OTHER_KEY = "a-different-audit-key-of-enough-length-0123456789"


async def airlock(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """The real ``airlock`` command as a process: its exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, err.decode()


def serving_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    return clean_env(
        SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", ANTHROPIC_API_KEY="sk-ant-x",
        AIRLOCK_DATA_DIR=str(tmp_path / "data"), AIRLOCK_PORT=str(free_port()), **settings,
    )  # fmt: skip


async def test_serve_and_worker_do_not_start_without_a_key(tmp_path: Path) -> None:
    env = serving_env(tmp_path)
    del env["AIRLOCK_AUDIT_KEY"]
    for command in ("serve", "worker"):
        code, err = await airlock(command, cwd=tmp_path, env=env)
        assert code == 2, err
        assert "AIRLOCK_AUDIT_KEY is not set" in err and "airlock audit keygen" in err
        assert "Traceback" not in err


async def test_serve_does_not_start_with_another_key_than_the_trail_has(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'data' / 'airlock.db'}", audit_key=OTHER_KEY)
    await store.append_audit(AuditEvent(run_id="_global", kind="halt", actor="U0ADMIN"))
    await store.close()
    code, err = await airlock("serve", cwd=tmp_path, env=serving_env(tmp_path))
    assert code == 2, err
    theirs, ours = AuditKey.from_text(OTHER_KEY).id, AuditKey.from_text(TEST_AUDIT_KEY).id
    assert f"AIRLOCK_AUDIT_KEY is key {ours}" in err and f"sealed with key {theirs}" in err
    assert TEST_AUDIT_KEY not in err and OTHER_KEY not in err


async def test_a_command_without_the_key_changes_nothing_in_a_sealed_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'airlock.db'}"
    store = await open_store(url, audit_key=TEST_AUDIT_KEY)
    run = await store.create_run(Run(goal="restart web", requester="U0REQUEST"))
    await store.append_audit(AuditEvent(run_id=run.id, kind="run_claimed", actor="airlock"))
    monkeypatch.setenv("AIRLOCK_STORE_URL", url)
    monkeypatch.delenv("AIRLOCK_AUDIT_KEY")
    killed = await asyncio.to_thread(CliRunner().invoke, app, ["kill", run.id])
    assert killed.exit_code == 2
    assert "AIRLOCK_AUDIT_KEY is not set, but this store's audit trail is sealed" in killed.output
    assert (await store.get_run(run.id)).status is RunStatus.QUEUED
    verified = await asyncio.to_thread(CliRunner().invoke, app, ["audit", "verify"])
    assert verified.exit_code == 2 and "AIRLOCK_AUDIT_KEY is not set" in verified.output
    shown = await asyncio.to_thread(CliRunner().invoke, app, ["audit", "show", run.id])
    assert shown.exit_code == 0 and "seals not checked" in shown.output
    await store.close()


async def test_the_key_is_never_shown_nor_kept_beside_the_trail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRLOCK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRLOCK_STORE_URL", f"sqlite:///{tmp_path / 'data' / 'airlock.db'}")
    runner = CliRunner()
    shown = await asyncio.to_thread(runner.invoke, app, ["config"], env={"COLUMNS": "200"})
    assert "AIRLOCK_AUDIT_KEY" in shown.output and TEST_AUDIT_KEY not in shown.output
    halted = await asyncio.to_thread(runner.invoke, app, ["halt", "--reason", "drill"])
    assert halted.exit_code == 0, halted.output
    files = [path for path in (tmp_path / "data").rglob("*") if path.is_file()]
    assert files and not any(TEST_AUDIT_KEY.encode() in path.read_bytes() for path in files)
    verified = await asyncio.to_thread(runner.invoke, app, ["audit", "verify"])
    assert verified.exit_code == 0 and "1 trail(s) intact" in verified.output


async def test_keygen_makes_a_key_settings_accept_and_a_short_one_is_refused_unshown() -> None:
    made = await asyncio.to_thread(CliRunner().invoke, app, ["audit", "keygen"])
    name, _, key = made.output.strip().partition("=")
    assert made.exit_code == 0 and name == "AIRLOCK_AUDIT_KEY" and len(key) == 64
    assert load_settings(None, audit_key=key).audit_chain_key is not None
    short = "x" * (MIN_KEY_CHARS - 1)
    with pytest.raises(ConfigError) as refused:
        load_settings(None, audit_key=short)
    assert refused.value.problems[0].startswith("AIRLOCK_AUDIT_KEY: must be at least 32")
    assert short not in str(refused.value)
