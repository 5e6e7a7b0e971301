"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Fail in CI, skip elsewhere: a test that cannot run must never pass silently in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this is required, not optional)", pytrace=False)
    pytest.skip(reason)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 5.0, interval: float = 0.02
) -> None:
    """Poll ``check`` until it is true; fail the test at the deadline."""
    async with asyncio.timeout(timeout):
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

            await eventually(healthy, timeout=30)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


TEST_AUDIT_KEY = "airlock-tests-audit-key-not-a-secret-0123456789"
"""The audit key (``AIRLOCK_AUDIT_KEY``) of the stores the tests open and the CLI they run."""
