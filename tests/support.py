"""Small helpers shared by the tests, and deadlines for real processes that hold under load."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import aiohttp
import pytest

from agent_core.testing.slack_requests import load_text_payload
from agent_core.testing.slack_server import SlackStandIn

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

LOAD_CAP = 4.0
"""The most a process deadline stretches with load: a real hang still fails, in minutes."""


def missing(reason: str) -> None:
    """Fail in CI, skip elsewhere: a test that cannot run must never pass silently in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this is required, not optional)", pytrace=False)
    pytest.skip(reason)


def load_factor() -> float:
    """How many times busier than one runnable process per core the machine is (1-minute
    load average over cores), from 1 (idle, or as busy as its cores) up to :data:`LOAD_CAP`."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this platform: assume an idle machine
        return 1.0
    return min(LOAD_CAP, max(1.0, load / (os.cpu_count() or 1)))


@dataclass(kw_only=True)
class Deadline:
    """``seconds`` from now, times how busy the machine is: a process that starts in 10 s
    alone gets the time it needs beside two busy loops on two cores.

    The load is read again at every check and the deadline only ever grows, so load that
    arrives while waiting counts too (the load average lags by about a minute).
    """

    seconds: float
    started: float = field(default_factory=time.monotonic)
    factor: float = field(default_factory=load_factor)

    @property
    def allowed(self) -> float:
        """The seconds allowed, as stretched so far."""
        return self.seconds * self.factor

    def stretch(self) -> None:
        """Read the load again; the deadline grows if the machine got busier."""
        self.factor = max(self.factor, load_factor())

    def passed(self) -> bool:
        """Whether the (stretched) deadline has passed."""
        self.stretch()
        return time.monotonic() >= self.started + self.allowed

    def __str__(self) -> str:
        return f"{self.allowed:g}s ({self.seconds:g}s x load {self.factor:.2f})"


@asynccontextmanager
async def within(seconds: float) -> AsyncIterator[Deadline]:
    """``asyncio.timeout(seconds)`` stretched as a :class:`Deadline`: for waits on processes.

    Raises ``TimeoutError`` at the deadline, like ``asyncio.timeout``.
    """
    loop = asyncio.get_running_loop()
    deadline = Deadline(seconds=seconds)
    begun = loop.time()
    async with asyncio.timeout_at(begun + deadline.allowed) as scope:

        def stretch() -> None:
            nonlocal handle
            if scope.expired():
                return
            deadline.stretch()
            scope.reschedule(begun + deadline.allowed)
            handle = loop.call_later(1.0, stretch)

        handle = loop.call_later(1.0, stretch)
        try:
            yield deadline
        finally:
            handle.cancel()


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 5.0,
    interval: float = 0.02,
    load_scaled: bool = False,
) -> None:
    """Poll ``check`` until it is true; fail the test at the deadline.

    ``load_scaled`` stretches the deadline with the machine's load (see :func:`within`): for
    what other processes do, never for a promise of speed the code makes.
    """
    async with within(timeout) if load_scaled else asyncio.timeout(timeout):
        # Polling is the point: what is awaited (a TTL, another process) has no event.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(interval)


@asynccontextmanager
async def airlock_serve(
    env: dict[str, str], cwd: Path, port: int, *, stderr: int = asyncio.subprocess.DEVNULL
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`airlock serve` as a real process, yielded once /healthz answers; killed afterwards."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", cwd=cwd, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                assert process.returncode is None, "airlock serve exited early"
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(healthy, timeout=30, load_scaled=True)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


TEST_AUDIT_KEY = "airlock-tests-audit-key-not-a-secret-0123456789"
"""The audit key (``AIRLOCK_AUDIT_KEY``) of the stores the tests open and the CLI they run."""


SERVE_READY = {
    "SLACK_BOT_TOKEN": "xoxb-serve-ready",
    "SLACK_APP_TOKEN": "xapp-1-A111-serve-ready",
    "ANTHROPIC_API_KEY": "sk-ant-serve-ready",
}
"""Settings with which `airlock serve` would start (with ``AIRLOCK_AUDIT_KEY``): `airlock
config` exits 0 only then."""


_COMMAND = dict(parse_qsl(load_text_payload("slash_command.txt")))
_triggers = iter(range(1, 1_000_000))


def slash_command(
    slack: SlackStandIn, text: str, *, user: str, channel: str = "C111", **fields: str
) -> dict[str, str]:
    """The form of `/agent <text>` typed by ``user`` in ``channel``, from Slack's sample, with
    a fresh trigger id and a response_url on the stand-in (never Slack's own hooks)."""
    where = {"command": "/agent", "text": text, "user_id": user, "channel_id": channel,
             "trigger_id": f"{next(_triggers)}.{time.monotonic_ns()}.cmd"}  # fmt: skip
    url = slack.response_url(user=user, channel=channel)
    return _COMMAND | where | {"response_url": url} | fields
