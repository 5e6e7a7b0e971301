"""Fixtures of the attack tests: `airlock serve` with default settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.attacks.harness import Served, serve_bot


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Served]:
    """`airlock serve` over HTTP with SQLite; an admin, an approver, nothing else set."""
    async with serve_bot(tmp_path) as served:
        yield served
