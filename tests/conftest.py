"""Shared fixtures: real stores on both backends, a real redis-server, deadlines."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agent_core.errors import StandInError
from agent_core.store import Store, open_store
from agent_core.testing.redis_server import RedisServer
from tests.support import LOAD_CAP, TEST_AUDIT_KEY, missing

if TYPE_CHECKING:
    from agent_core.memory.embedder import Embedder


@pytest.fixture(autouse=True)
def audit_key_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """``AIRLOCK_AUDIT_KEY`` as in production, the key the tests' stores are opened with,
    so the CLI run in a test checks the seals those stores made."""
    monkeypatch.setenv("AIRLOCK_AUDIT_KEY", TEST_AUDIT_KEY)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``processes`` gets LOAD_CAP times its time limit: its waits on processes
    stretch with the machine's load up to that much (tests.support.Deadline), and the limit
    must not cut them short. A hang still fails, later."""
    default = float(config.getini("timeout") or 0)
    for item in items:
        if item.get_closest_marker("processes") is None:
            continue
        marker = item.get_closest_marker("timeout")
        limit = float(marker.args[0]) if marker is not None and marker.args else default
        if limit > 0:
            item.add_marker(pytest.mark.timeout(limit * LOAD_CAP), append=False)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis server: ``REDIS_URL`` if given, else a fresh ``redis-server`` on a free port."""
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    try:
        server = RedisServer()
        server.start()
    except StandInError as error:
        missing(str(error))
        return
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_store_url(redis_url: str) -> str:
    """A store URL on the shared Redis server with a key prefix of this test's own."""
    return f"{redis_url}?prefix=test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def sqlite_store_url(tmp_path: Path) -> str:
    """A store URL for a fresh SQLite file."""
    return f"sqlite:///{(tmp_path / 'airlock.db').as_posix()}"


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs once per backend."""
    fixture = "sqlite_store_url" if request.param == "sqlite" else "redis_store_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open store on each backend, closed after the test."""
    opened = await open_store(store_url, poll_interval=0.02, audit_key=TEST_AUDIT_KEY)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2 embedder, loaded once for the whole session."""
    from agent_core.errors import AirlockError
    from agent_core.memory.embedder import Embedder

    model = Embedder()
    try:
        model.embed_sync(["warm up"])
    except AirlockError as error:
        missing(str(error))
    return model
