"""`airlock serve` readiness: /readyz says why Slack cannot reach it yet; a stop never waits
for Slack."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent_core.testing.redis_server import free_port
from agent_core.testing.slack_server import SlackStandIn
from tests.e2e.test_serve import clean_env
from tests.support import airlock_serve, eventually, within

pytestmark = pytest.mark.processes

TOKEN = "xoxb-ready"
APP_TOKEN = "xapp-1-A111-ready"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
GRACE_SECONDS = 3.0


def serve_env(tmp_path: Path, port: int, api_url: str, **more: str) -> dict[str, str]:
    return clean_env(
        SLACK_BOT_TOKEN=TOKEN, SLACK_API_URL=api_url, ANTHROPIC_API_KEY="sk-ant-ready",
        AIRLOCK_DATA_DIR=str(tmp_path / "data"), AIRLOCK_PORT=str(port),
        AIRLOCK_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS), **more,
    )  # fmt: skip


async def readiness(port: int) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        return response.status, await response.json()


async def connected_gauge(port: int) -> float:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    [line] = [line for line in text.splitlines() if line.startswith("airlock_slack_connected ")]
    return float(line.split()[1])


async def stops_within_grace(process: asyncio.subprocess.Process) -> None:
    """SIGTERM: exit 0 within the grace period (stretched with the machine's load)."""
    process.send_signal(signal.SIGTERM)
    async with within(GRACE_SECONDS):
        assert await process.wait() == 0


async def test_a_refused_app_token_is_not_ready_and_sigterm_still_stops(tmp_path: Path) -> None:
    port = free_port()
    async with SlackStandIn(bot_token=TOKEN, app_token="xapp-1-A111-the-right-one") as slack:
        env = serve_env(tmp_path, port, slack.api_url, SLACK_APP_TOKEN=APP_TOKEN)
        async with airlock_serve(env, tmp_path, port) as process:
            await slack.wait_for_call("apps.connections.open", timeout=30)

            async def refused() -> bool:
                status, body = await readiness(port)
                assert status == 503, body
                return body["reasons"] == [
                    "Socket Mode: not connected to Slack (apps.connections.open answered"
                    " invalid_auth)"
                ]

            await eventually(refused, timeout=10, load_scaled=True)
            assert await connected_gauge(port) == 0.0
            # Alive all the same: liveness is not readiness.
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/healthz") as response,
            ):
                assert response.status == 200
            await stops_within_grace(process)


async def test_socket_mode_is_ready_once_connected(tmp_path: Path) -> None:
    port = free_port()
    async with SlackStandIn(bot_token=TOKEN, app_token=APP_TOKEN) as slack:
        # Slack asks the client to come back in a few seconds: not connected meanwhile.
        slack.fail_next("apps.connections.open", retry_after=5)
        env = serve_env(tmp_path, port, slack.api_url, SLACK_APP_TOKEN=APP_TOKEN)
        async with airlock_serve(env, tmp_path, port) as process:
            await slack.wait_for_call("apps.connections.open", timeout=30)
            status, body = await readiness(port)
            assert status == 503
            assert "Socket Mode: not connected to Slack (connecting)" in body["reasons"]

            async def ready() -> bool:
                return (await readiness(port)) == (200, {"ready": True})

            await eventually(ready, timeout=20, load_scaled=True)
            assert await connected_gauge(port) == 1.0
            assert len(slack.calls_to("apps.connections.open")) == 2
            assert slack.calls_to("auth.test")[0].token == TOKEN
            await stops_within_grace(process)


async def test_http_mode_is_ready_once_auth_test_passes(tmp_path: Path) -> None:
    port = free_port()
    async with SlackStandIn(bot_token=TOKEN) as slack:
        env = serve_env(tmp_path, port, slack.api_url, SLACK_SIGNING_SECRET=SECRET)
        async with airlock_serve(env, tmp_path, port):

            async def ready() -> bool:
                return (await readiness(port)) == (200, {"ready": True})

            await eventually(ready, timeout=10, load_scaled=True)
            assert await connected_gauge(port) == 1.0
            assert [call.token for call in slack.calls_to("auth.test")] == [TOKEN]


async def test_http_mode_with_a_refused_bot_token_says_so(tmp_path: Path) -> None:
    port = free_port()
    async with SlackStandIn(bot_token="xoxb-another-app") as slack:
        env = serve_env(tmp_path, port, slack.api_url, SLACK_SIGNING_SECRET=SECRET)
        async with airlock_serve(env, tmp_path, port) as process:
            await slack.wait_for_call("auth.test", timeout=30)

            async def refused() -> bool:
                return (await readiness(port)) == (
                    503,
                    {"ready": False, "reasons": ["auth.test answered invalid_auth"]},
                )

            await eventually(refused, timeout=10, load_scaled=True)
            await stops_within_grace(process)


async def test_unreachable_slack_is_not_ready_and_sigterm_still_stops(tmp_path: Path) -> None:
    port, nowhere = free_port(), free_port()  # nothing listens on the second
    env = serve_env(tmp_path, port, f"http://127.0.0.1:{nowhere}/api/", SLACK_APP_TOKEN=APP_TOKEN)
    async with airlock_serve(env, tmp_path, port) as process:

        async def unreachable() -> bool:
            status, body = await readiness(port)
            assert status == 503, body
            return body["reasons"] == [
                "auth.test: cannot reach Slack (ClientConnectorError)",
                "Socket Mode: not connected to Slack (apps.connections.open: cannot reach Slack"
                " (ClientConnectorError))",
            ]

        await eventually(unreachable, timeout=10, load_scaled=True)
        await stops_within_grace(process)
