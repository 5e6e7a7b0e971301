"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

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
