"""The first minutes with airlock, through the real CLI: what a command says when something is
missing, where its data lives, its version, its spinner, and `make install`."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from agent_core.testing.anthropic_server import AnthropicStandIn, tool_use_reply
from tests.e2e.test_serve import REPO, airlock, clean_env
from tests.support import SERVE_READY, within

pytestmark = pytest.mark.processes

KEY = "sk-ant-first-contact"
PLAN = {"subtasks": [{"id": "s1", "description": "look around", "required_tools": [],
                      "depends_on": [], "risk_level": "low"}]}  # fmt: skip


def problem_lines(err: str) -> list[str]:
    return [line.strip() for line in err.splitlines() if line.startswith("  ")]


async def test_serve_with_nothing_set_offers_both_ways_in_and_how_to_make_the_key(
    tmp_path: Path,
) -> None:
    env = clean_env()
    del env["AIRLOCK_AUDIT_KEY"]
    code, out, err = await airlock("serve", cwd=tmp_path, env=env)
    assert code == 2 and "Traceback" not in out + err
    assert problem_lines(err) == [
        "SLACK_BOT_TOKEN is not set",
        "ANTHROPIC_API_KEY is not set",
        "SLACK_APP_TOKEN or SLACK_SIGNING_SECRET is not set: `SLACK_APP_TOKEN` for Socket Mode"
        " (recommended) or `SLACK_SIGNING_SECRET` for HTTP",
        "AIRLOCK_AUDIT_KEY is not set: `airlock audit keygen` makes one (keep it with your"
        " secrets, not in the data folder)",
    ]
    assert not (tmp_path / "data").exists()


async def test_config_exits_2_saying_why_serve_would_refuse(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the data folder goes")
    env = clean_env(SLACK_BOT_TOKEN="xoxb-config", AIRLOCK_DATA_DIR=str(tmp_path / "data"),
                    AIRLOCK_PORT="3100", AIRLOCK_METRICS_PORT="3100", COLUMNS="200")  # fmt: skip
    code, out, err = await airlock("config", cwd=tmp_path, env=env)
    assert code == 2 and "Traceback" not in out + err
    assert "AIRLOCK_METRICS_PORT" in out  # the settings are shown all the same
    assert "`airlock serve` would refuse to start" in err
    problems = problem_lines(err)
    assert problems[:2] == [
        "ANTHROPIC_API_KEY is not set",
        "SLACK_APP_TOKEN or SLACK_SIGNING_SECRET is not set: `SLACK_APP_TOKEN` for Socket Mode"
        " (recommended) or `SLACK_SIGNING_SECRET` for HTTP",
    ]
    assert problems[2] == "AIRLOCK_METRICS_PORT: 3100 is the main port too; give it another one"
    assert problems[3].startswith(f"AIRLOCK_DATA_DIR: {tmp_path / 'data'} cannot hold")
    assert "it is a file" in problems[3] and len(problems) == 4
    # Fixed, it exits 0; and it made no folder on the way.
    (tmp_path / "data").unlink()
    env = clean_env(**SERVE_READY, AIRLOCK_DATA_DIR=str(tmp_path / "data"), COLUMNS="200")
    code, out, err = await airlock("config", cwd=tmp_path, env=env)
    assert (code, err) == (0, "")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "args",
    [["approvals"], ["approve", "apr_0123456789ab"], ["reject", "apr_0123456789ab"],
     ["kill", "--all"], ["audit", "verify"], ["audit", "show", "run_0123456789ab"]],
)  # fmt: skip
async def test_commands_on_stored_data_refuse_a_store_that_is_not_there(
    args: list[str], tmp_path: Path
) -> None:
    code, out, err = await airlock(*args, cwd=tmp_path, env=clean_env())
    assert code == 2 and "Traceback" not in out + err
    [line] = err.splitlines()
    assert line.startswith("airlock: AIRLOCK_DATA_DIR: there is no store at data/airlock.db")
    assert "--env-file" in line
    assert not (tmp_path / "data").exists()  # no empty store made in the wrong place


async def test_a_relative_data_folder_lives_beside_the_env_file(tmp_path: Path) -> None:
    ops, elsewhere = tmp_path / "ops", tmp_path / "elsewhere"
    ops.mkdir()
    elsewhere.mkdir()
    (ops / ".env").write_text("AIRLOCK_DATA_DIR=state\n")
    env = clean_env()
    env_file = ["--env-file", str(ops / ".env")]
    code, _, err = await airlock("approvals", *env_file, cwd=elsewhere, env=env)
    assert code == 2 and f"there is no store at {ops / 'state' / 'airlock.db'}" in err
    code, _, err = await airlock("halt", "--reason", "drill", *env_file, cwd=elsewhere, env=env)
    assert code == 0, err
    assert (ops / "state" / "airlock.db").is_file()
    assert not (elsewhere / "state").exists() and not (elsewhere / "data").exists()
    code, out, err = await airlock("approvals", *env_file, cwd=elsewhere, env=env)
    assert code == 0, err
    assert "Pending approvals" in out


async def test_version_comes_from_the_package(tmp_path: Path) -> None:
    code, out, err = await airlock("--version", cwd=tmp_path, env=clean_env())
    assert (code, out, err) == (0, f"airlock {version('airlock')}\n", "")


async def test_a_spinner_shows_on_a_terminal_and_never_in_a_pipe(tmp_path: Path) -> None:
    async with AnthropicStandIn(api_key=KEY) as server:
        env = clean_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.base_url,
                        AIRLOCK_DATA_DIR=str(tmp_path / "data"), TERM="xterm")  # fmt: skip
        server.enqueue(tool_use_reply("submit_plan", PLAN))
        code, _, err = await airlock("run", "--dry-run", "look", cwd=tmp_path, env=env)
        assert code == 0, err
        assert "planning" not in err and "\x1b" not in err
        server.enqueue(tool_use_reply("submit_plan", PLAN))
        code, shown = await _with_terminal_stderr(env, tmp_path, "run", "--dry-run", "look")
    assert code == 0, shown
    assert "planning" in shown and "starting" in shown


async def _with_terminal_stderr(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str]:
    """Run airlock with stderr on a pseudo-terminal (stdout piped); what the terminal got."""
    leader, follower = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    try:
        async with within(60):
            shown = await asyncio.to_thread(_read_all, leader)
            await process.communicate()
    finally:
        os.close(leader)
    assert process.returncode is not None
    return process.returncode, shown


def _read_all(fd: int) -> str:
    """Everything written to a pseudo-terminal until its last writer closes it."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_make_install_says_what_it_does_before_each_step(tmp_path: Path) -> None:
    shown = subprocess.run(
        ["make", "--dry-run", "--always-make", "--no-print-directory", "install",
         f"VENV={tmp_path / '.venv'}"],
        # Under `make test` the outer make's variables would make this a sub-make.
        cwd=REPO, capture_output=True, text=True, check=True,
        env={k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")},
    ).stdout.splitlines()  # fmt: skip
    steps = [index for index, line in enumerate(shown) if not line.startswith("echo ")]
    # venv, pip, the packages, the embedding model's ONNX file, the stamp
    assert len(steps) == 5 and shown[-1].startswith("touch "), shown
    assert any("Embedder()" in shown[index] for index in steps), shown
    for index in steps:
        assert re.match(r'echo "==> make install: \w', shown[index - 1]), shown
