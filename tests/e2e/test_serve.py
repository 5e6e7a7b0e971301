"""`airlock` as a real process: the CLI's answers, and `airlock serve` over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from agent_core.testing.redis_server import free_port
from agent_core.testing.slack_requests import (
    SlackRequest,
    SlackRequestSigner,
    load_json_payload,
    post_to_bot,
)
from agent_core.testing.slack_server import SlackStandIn
from tests.support import SERVE_READY, TEST_AUDIT_KEY, airlock_serve, within

pytestmark = pytest.mark.processes

REPO = Path(__file__).resolve().parents[2]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-airlock-test"
OUR_VARIABLES = ("SLACK_", "ANTHROPIC_", "AIRLOCK_")

# Slack's documented url_verification body (https://api.slack.com/events/url_verification);
# the shared payload folder has no sample of it.
URL_VERIFICATION = {
    "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
    "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
    "type": "url_verification",
}


def clean_env(**settings: str) -> dict[str, str]:
    """The test process's environment without any airlock setting, plus ``settings``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLES)}
    # The checkout under test, whether or not it is installed in this interpreter.
    # Memory loads the embedding model in every process; tests of memory turn it on.
    ours = {"PYTHONPATH": str(REPO), "AIRLOCK_MEMORY_ENABLED": "false",
            "AIRLOCK_AUDIT_KEY": TEST_AUDIT_KEY}  # fmt: skip
    return base | ours | settings


async def airlock(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with within(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_help_lists_the_commands(tmp_path: Path) -> None:
    code, out, _ = await airlock("--help", cwd=tmp_path, env=clean_env(COLUMNS="120"))
    assert code == 0
    assert "serve" in out and "config" in out


async def test_serve_without_credentials_names_what_is_missing(tmp_path: Path) -> None:
    code, out, err = await airlock("serve", cwd=tmp_path, env=clean_env())
    assert code == 2
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "ANTHROPIC_API_KEY"):
        assert f"{name} is not set" in err
    assert ".env.example" in err
    assert "Traceback" not in out + err


async def test_workers_and_front_ends_only_without_redis_exit_2_and_say_why(
    tmp_path: Path,
) -> None:
    env = clean_env(
        SLACK_BOT_TOKEN="xoxb-x", SLACK_SIGNING_SECRET="s", ANTHROPIC_API_KEY="sk-x",
        AIRLOCK_DATA_DIR=str(tmp_path / "data"), AIRLOCK_PORT=str(free_port()),
    )  # fmt: skip
    code, out, err = await airlock("worker", cwd=tmp_path, env=env)
    assert code == 2 and "airlock worker needs a Redis store" in err
    code, out, err = await airlock("serve", "--no-worker", cwd=tmp_path, env=env)
    assert code == 2 and "--no-worker needs a Redis store" in err
    assert "Traceback" not in out + err
    code, _, err = await airlock("worker", cwd=tmp_path, env=clean_env())
    assert code == 2 and "SLACK_BOT_TOKEN is not set" in err


async def test_invalid_settings_are_one_line_each_and_exit_2(tmp_path: Path) -> None:
    env = clean_env(AIRLOCK_PORT="eighty", AIRLOCK_ADMINS="alice", ANTHROPIC_API_KEY="sk-ant-x")
    code, _, err = await airlock("serve", cwd=tmp_path, env=env)
    assert code == 2
    problems = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert [p.split(":")[0] for p in problems] == ["AIRLOCK_ADMINS", "AIRLOCK_PORT"]
    assert "sk-ant-x" not in err


async def test_config_masks_secrets(tmp_path: Path) -> None:
    env = clean_env(**SERVE_READY | {"SLACK_BOT_TOKEN": TOKEN}, COLUMNS="200")
    code, out, _ = await airlock("config", cwd=tmp_path, env=env)
    assert code == 0
    assert "SLACK_BOT_TOKEN" in out and TOKEN not in out


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """`airlock serve` in HTTP mode against the Slack stand-in, until the test ends."""
    port = free_port()
    async with SlackStandIn(bot_token=TOKEN) as slack:
        env = clean_env(
            SLACK_BOT_TOKEN=TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.api_url,
            ANTHROPIC_API_KEY="sk-ant-test",
            AIRLOCK_DATA_DIR=str(tmp_path / "data"),
            AIRLOCK_PORT=str(port),
        )
        async with airlock_serve(env, tmp_path, port, stderr=asyncio.subprocess.PIPE) as process:
            yield f"http://127.0.0.1:{port}", process


async def test_serve_answers_health_and_metrics(
    served: tuple[str, asyncio.subprocess.Process],
) -> None:
    base, _ = served
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as response:
            health = await response.json()
        async with http.get(f"{base}/metrics") as response:
            metrics = await response.text()
            content_type = response.headers["Content-Type"]
    assert health == {"ok": True, "store": "ok", "model": "claude-sonnet-4-6"}
    assert content_type.startswith("text/plain")
    assert "process_cpu_seconds_total" in metrics or "python_info" in metrics


async def test_metrics_have_a_port_of_their_own_when_one_is_set(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    async with SlackStandIn(bot_token=TOKEN) as slack:
        env = clean_env(
            SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=slack.api_url,
            ANTHROPIC_API_KEY="sk-ant-test", AIRLOCK_DATA_DIR=str(tmp_path / "data"),
            AIRLOCK_PORT=str(port), AIRLOCK_METRICS_PORT=str(metrics_port),
        )  # fmt: skip
        async with airlock_serve(env, tmp_path, port), aiohttp.ClientSession() as http:
            public, private = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
            async with http.get(f"{private}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                assert "airlock_active_runs" in await response.text()
            # The public port, the one Slack's Events reach, no longer shows them...
            async with http.get(f"{public}/metrics") as response:
                assert response.status == 404
            # ...and still answers Slack and health checks; the metrics port answers nothing else.
            signed = SlackRequestSigner(SECRET).event(URL_VERIFICATION)
            assert (await post_to_bot(f"{public}/slack/events", signed))[0] == 200
            async with http.get(f"{public}/healthz") as response:
                assert response.status == 200
            for path in ("/healthz", "/slack/events"):
                async with http.get(f"{private}{path}") as response:
                    assert response.status == 404, path


async def test_the_metrics_port_must_differ_from_the_port(tmp_path: Path) -> None:
    port = str(free_port())
    env = clean_env(
        SLACK_BOT_TOKEN="xoxb-x", SLACK_SIGNING_SECRET="s", ANTHROPIC_API_KEY="sk-x",
        AIRLOCK_DATA_DIR=str(tmp_path / "data"), AIRLOCK_PORT=port, AIRLOCK_METRICS_PORT=port,
    )  # fmt: skip
    code, out, err = await airlock("serve", cwd=tmp_path, env=env)
    assert code == 2 and "AIRLOCK_METRICS_PORT" in err
    assert "Traceback" not in out + err


async def test_serve_verifies_slack_signatures(
    served: tuple[str, asyncio.subprocess.Process],
) -> None:
    base, _ = served
    url = f"{base}/slack/events"
    signed = SlackRequestSigner(SECRET).event(URL_VERIFICATION)
    status, body = await post_to_bot(url, signed)
    # Bolt answers in JSON, one of the three forms Slack accepts.
    assert (status, json.loads(body)) == (200, {"challenge": URL_VERIFICATION["challenge"]})

    forged = SlackRequestSigner("not-the-secret").event(load_json_payload("app_mention.json"))
    assert (await post_to_bot(url, forged))[0] == 401
    unsigned = SlackRequest(forged.body, {"Content-Type": "application/json"})
    assert (await post_to_bot(url, unsigned))[0] == 401


async def test_serve_stops_cleanly_on_sigterm(
    served: tuple[str, asyncio.subprocess.Process],
) -> None:
    _, process = served
    process.send_signal(signal.SIGTERM)
    async with within(15):
        code = await process.wait()
    assert process.stderr is not None
    errors = (await process.stderr.read()).decode()
    assert code == 0, errors
    assert "Traceback" not in errors
