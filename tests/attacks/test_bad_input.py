"""Bad input to the real ``airlock`` processes: one line naming what to fix, exit 2.

Every command that could meet the input is tried: an empty goal, an unknown run, malformed
JSON settings, a Redis that does not answer, a data folder that cannot be written, a
workspace that is a file, a port in use; a run held by a crashed terminal; an MCP server
that floods its stdout with lines that are not JSON-RPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.redis_server import free_port
from tests.e2e.test_serve import airlock, clean_env
from tests.support import eventually, load_factor, missing

KEY = "sk-ant-bad-input"
PASSWORD = "hunter2-not-to-be-shown"
GARBAGE_SERVER = Path(__file__).with_name("garbage_mcp_server.py")

COMMANDS = {
    "run": ["run", "look around"],
    "resume": ["run", "--resume", "run_0123456789ab"],
    "retry": ["retry", "run_0123456789ab"],
    "serve": ["serve"],
    "worker": ["worker"],
    "approvals": ["approvals"],
    "audit": ["audit", "verify"],
    "memory": ["memory", "stats"],
    "kill": ["kill", "--all"],
}


def settings(data: Path, **more: str) -> dict[str, str]:
    """Everything a command needs, pointing nowhere real: nothing may be reached by mistake."""
    return clean_env(**{
        "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "SLACK_BOT_TOKEN": "xoxb-bad-input", "SLACK_SIGNING_SECRET": "bad-input-secret",
        "SLACK_API_URL": "http://127.0.0.1:9/", "AIRLOCK_DATA_DIR": str(data),
        "AIRLOCK_PORT": str(free_port()), "COLUMNS": "200", **more,
    })  # fmt: skip


def one_line(code: int, out: str, err: str) -> str:
    """The single line a command that could not start printed; it exited 2."""
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def settings_problem(code: int, out: str, err: str) -> str:
    """The one problem line of ``airlock: invalid settings``; it exited 2."""
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err and "invalid settings" in err
    problems = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert len(problems) == 1, err
    return problems[0]


async def test_an_empty_goal_is_refused_naming_it(tmp_path: Path) -> None:
    for goal in ("", "   ", "\n\t"):
        line = one_line(*await airlock("run", goal, cwd=tmp_path, env=settings(tmp_path / "d")))
        assert line == "airlock run: the goal is empty; say what the agent should achieve"
    line = one_line(*await airlock("run", "--resume", "", cwd=tmp_path,
                                   env=settings(tmp_path / "d")))  # fmt: skip
    assert "--resume" in line
    assert not (tmp_path / "d" / "airlock.db").exists()


async def test_resuming_an_unknown_run_names_the_run(tmp_path: Path) -> None:
    env = settings(tmp_path / "data")
    line = one_line(*await airlock("run", "--resume", "run_0123456789ab", cwd=tmp_path, env=env))
    assert line.startswith("airlock: --resume run_0123456789ab: there is no such run")


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        ("AIRLOCK_TOOL_RISKS", '{"run_command": "low"', "run"),
        ("AIRLOCK_TOOL_RISKS", "{run_command: low}", "serve"),
        ("AIRLOCK_TOOL_RISKS", "not json at all", "worker"),
        ("AIRLOCK_PRICES", '{"claude-sonnet-4-6": {"input": 3, "output": }}', "approvals"),
        ("AIRLOCK_PRICES", "[1, 2", "audit"),
        ("AIRLOCK_PRICES", "{'single': 'quotes'}", "memory"),
        ("AIRLOCK_TOOL_RISKS", "{", "config"),
    ],
)
async def test_malformed_json_settings_name_the_setting(
    variable: str, value: str, command: str, tmp_path: Path
) -> None:
    args = COMMANDS.get(command, [command])
    problem = settings_problem(*await airlock(
        *args, cwd=tmp_path, env=settings(tmp_path / "data", **{variable: value})
    ))  # fmt: skip
    assert problem.startswith(f"{variable}: not valid JSON")
    # The same in a .env file:
    (tmp_path / ".env").write_text(f"{variable}={json.dumps(value)}\n")
    problem = settings_problem(*await airlock(*args, cwd=tmp_path, env=settings(tmp_path / "d")))
    assert problem.startswith(f"{variable}: not valid JSON")


async def test_json_settings_of_the_wrong_shape_name_the_entry(tmp_path: Path) -> None:
    env = settings(tmp_path / "data", AIRLOCK_TOOL_RISKS='{"run_command": "lowest"}')
    problem = settings_problem(*await airlock("config", cwd=tmp_path, env=env))
    assert problem.startswith("AIRLOCK_TOOL_RISKS: run_command: Input should be")


async def test_an_env_file_line_that_cannot_be_parsed_names_the_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AIRLOCK_PORT=3001\nAIRLOCK_PRICES='{'a': 1}'\nX=1\n")
    problem = settings_problem(*await airlock("config", cwd=tmp_path, env=settings(tmp_path)))
    assert problem == "--env-file .env: cannot parse line 2 (NAME=value)"


async def test_an_env_file_that_is_not_text_names_it(tmp_path: Path) -> None:
    (tmp_path / "binary.env").write_bytes(b"AIRLOCK_PORT=\xff\xfe\n")
    problem = settings_problem(*await airlock(
        "config", "--env-file", "binary.env", cwd=tmp_path, env=settings(tmp_path / "data")
    ))  # fmt: skip
    assert problem.startswith("--env-file binary.env: cannot be read")


async def test_a_missing_env_file_given_on_purpose_names_it(tmp_path: Path) -> None:
    problem = settings_problem(*await airlock(
        "approvals", "--env-file", "prod.env", cwd=tmp_path, env=settings(tmp_path / "data")
    ))  # fmt: skip
    assert problem == "--env-file prod.env: there is no such file"


async def test_remembering_nothing_is_refused(tmp_path: Path) -> None:
    line = one_line(*await airlock("memory", "add", " ", cwd=tmp_path,
                                   env=settings(tmp_path / "data")))  # fmt: skip
    assert line == "airlock memory: there is nothing to remember (the text is empty)"


@pytest.mark.parametrize("port", ["0", "65536", "99999", "-1"])
async def test_a_port_out_of_range_is_refused(port: str, tmp_path: Path) -> None:
    code, out, err = await airlock("serve", "--port", port, cwd=tmp_path,
                                   env=settings(tmp_path / "data"))  # fmt: skip
    assert code == 2 and "Traceback" not in out + err
    assert "Invalid value for '--port'" in err


@pytest.mark.parametrize("command", list(COMMANDS))
async def test_an_unreachable_redis_names_the_url_without_its_password(
    command: str, tmp_path: Path
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:1/0"
    env = settings(tmp_path / "data", AIRLOCK_STORE_URL=url)
    line = one_line(*await airlock(*COMMANDS[command], cwd=tmp_path, env=env))
    assert "AIRLOCK_STORE_URL: cannot use Redis at redis://:***@127.0.0.1:1/0" in line
    assert PASSWORD not in line


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[Path]:
    """``folder``, made so that not even root may create anything in it."""
    folder.mkdir()
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if made.returncode != 0:
            missing(f"cannot make a folder immutable here: {made.stderr.decode().strip()}")
    else:
        folder.chmod(0o555)
    try:
        yield folder
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


@pytest.mark.parametrize("command", list(COMMANDS))
async def test_an_unwritable_data_folder_names_the_setting(command: str, tmp_path: Path) -> None:
    with unwritable(tmp_path / "data") as data:
        line = one_line(*await airlock(*COMMANDS[command], cwd=tmp_path, env=settings(data)))
    assert line.startswith("airlock: AIRLOCK_DATA_DIR: "), line
    assert str(data) in line


@pytest.mark.parametrize("command", ["run", "approvals", "memory"])
async def test_a_data_folder_that_is_a_file_names_the_setting(command: str, tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file, not a folder")
    line = one_line(*await airlock(*COMMANDS[command], cwd=tmp_path,
                                   env=settings(tmp_path / "data")))  # fmt: skip
    assert line.startswith("airlock: AIRLOCK_DATA_DIR: "), line


@pytest.mark.parametrize("command", ["run", "resume", "retry", "serve", "worker"])
async def test_a_workspace_that_is_a_file_names_the_setting(command: str, tmp_path: Path) -> None:
    (tmp_path / "workspace").write_text("a file, not a folder")
    env = settings(tmp_path / "data", AIRLOCK_WORKSPACE_DIR=str(tmp_path / "workspace"))
    line = one_line(*await airlock(*COMMANDS[command], cwd=tmp_path, env=env))
    assert line.startswith("airlock: AIRLOCK_WORKSPACE_DIR: "), line
    assert "is a file" in line


@pytest.mark.parametrize("command", ["serve", "worker"])
async def test_a_port_in_use_names_the_port(command: str, tmp_path: Path, redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = settings(tmp_path / "data", AIRLOCK_PORT=str(port),
                       AIRLOCK_STORE_URL=f"{redis_url}?prefix=port-{command}:")  # fmt: skip
        line = one_line(*await airlock(command, cwd=tmp_path, env=env))
    reason = os.strerror(errno.EADDRINUSE)
    assert line == f"airlock: --port / AIRLOCK_PORT {port}: cannot listen there ({reason})"


# --- a run held by another process --------------------------------------------------------


@contextlib.asynccontextmanager
async def started(
    *args: str, cwd: Path, env: dict[str, str]
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``airlock *args`` started; yields it and its run id once it says which run it works on."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await process.stdout.readline()).decode()
                assert line, "airlock run ended before it named its run"
                match = re.match(r"run (run_[0-9a-f]+) ·", line)
                if match:
                    break
        yield process, match.group(1)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_resuming_a_run_a_crashed_terminal_held_says_who_and_until_when(
    tmp_path: Path, redis_url: str
) -> None:
    release = asyncio.Event()

    async def slow(request: RecordedRequest) -> Reply:
        await release.wait()  # the model is "thinking" when the terminal dies
        return text_reply("never delivered")

    plan = {"subtasks": [{"id": "s1", "description": "look", "required_tools": [],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    async with AnthropicStandIn(api_key=KEY, script=[tool_use_reply("submit_plan", plan), slow,
                                                     text_reply("looked")]) as server:  # fmt: skip
        env = settings(tmp_path / "data", ANTHROPIC_BASE_URL=server.base_url,
                       AIRLOCK_STORE_URL=f"{redis_url}?prefix=held-{os.getpid()}:",
                       AIRLOCK_LLM_MAX_RETRIES="0")  # fmt: skip
        # Long enough to outlast starting the next process, however busy the machine is.
        crashing = env | {"AIRLOCK_LEASE_SECONDS": str(round(15 * load_factor()))}
        try:
            async with started("run", "look around", cwd=tmp_path, env=crashing) as (
                first,
                run_id,
            ):

                async def thinking() -> bool:
                    return len(server.message_requests()) == 2

                await eventually(thinking, timeout=30)
                first.send_signal(signal.SIGKILL)
                await first.wait()
            line = one_line(*await airlock("run", "--resume", run_id, cwd=tmp_path, env=env))
            assert re.fullmatch(
                rf"airlock: --resume {run_id}: held by terminal-\S+ until \d\d:\d\d:\d\d UTC"
                r" \(in \d+ s\), .* add --wait to take it over then",
                line,
            ), line
            code, out, err = await airlock("run", "--resume", run_id, "--wait", cwd=tmp_path,
                                           env=env)  # fmt: skip
        finally:
            release.set()
    assert code == 0, out + err
    assert f"run {run_id} is held by terminal-" in out and "waiting for it" in out
    assert "looked" in out and "completed" in out


# --- an MCP server flooding its stdout ----------------------------------------------------


async def test_an_mcp_server_flooding_stdout_is_logged_at_most_once_a_second(
    tmp_path: Path,
) -> None:
    flood_seconds = 3.0
    config = {"servers": {"noisy": {
        "command": sys.executable, "args": [str(GARBAGE_SERVER), str(flood_seconds)],
        "default_risk": "low", "start_timeout_seconds": 30,
    }}}  # fmt: skip
    (tmp_path / "mcp.json").write_text(json.dumps(config))
    plan = {"subtasks": [{"id": "s1", "description": "add", "required_tools": ["noisy__add"],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    script = [tool_use_reply("submit_plan", plan), tool_use_reply("noisy__add", {"a": 2, "b": 3}),
              text_reply("2 + 3 = 5")]  # fmt: skip
    async with AnthropicStandIn(api_key=KEY, script=script) as server:
        env = settings(tmp_path / "data", ANTHROPIC_BASE_URL=server.base_url,
                       AIRLOCK_MCP_CONFIG=str(tmp_path / "mcp.json"))  # fmt: skip
        code, out, err = await airlock("run", "add two numbers", cwd=tmp_path, env=env)
        result = server.message_requests()[2].tool_results()[0]
    assert code == 0, out + err[-2000:]
    assert not result.get("is_error") and "5" in str(result["content"])
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    noise = [line for line in lines if line.get("mcp_server") == "noisy"]
    held = sum(int(line.get("held_back", 0)) for line in noise)
    print(f"{len(err)} bytes of log, {len(noise)} lines about the server, {held} held back")
    assert len(err) < 10_000, err[:3000]
    assert 1 <= len(noise) <= flood_seconds + 3, noise
    assert held > 100, "the server hardly flooded; the limit was not exercised"
    assert "Traceback" not in err and "not JSON-RPC, a stray print" not in err
