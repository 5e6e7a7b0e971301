"""Ending asyncio tasks for good, shared by the run host and its claims strategies."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["cancelled"]

_RECANCEL_SECONDS = 1.0


async def cancelled(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended.

    A task is cancelled again every second until it ends: a library whose own timeout races
    the cancellation can swallow it (aiohttp's and async-timeout's can), and the task would
    then go on, and a process waiting for it would never exit.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_RECANCEL_SECONDS)
