"""Shared by the attack tests: `airlock serve` with default settings, the agent harness (a
real runner, orchestrator, gate and store against the Anthropic stand-in, as in tests/agent)
and an attacker's collecting server."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from agent_core.tools.builtins.http import IPAddress
from tests.agent.conftest import anthropic, harness_factory, llm, store, tools
from tests.attacks.harness import Served, serve_bot

__all__ = [
    "Collector",
    "anthropic",
    "collector",
    "harness_factory",
    "llm",
    "loopback",
    "store",
    "tools",
]


@dataclass(kw_only=True)
class Collector:
    """A stand-in for an attacker's server: it records what it is sent."""

    port: int
    received: list[str]


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    received: list[str] = []

    async def collect(request: web.Request) -> web.Response:
        received.append(str(request.rel_url))
        return web.Response(text="thanks")

    app = web.Application()
    app.router.add_get("/{tail:.*}", collect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Collector(port=runner.addresses[0][1], received=received)
    finally:
        await runner.cleanup()


async def loopback(host: str, port: int) -> list[IPAddress]:
    """Every host name resolves to this machine (where the collector listens)."""
    return [ipaddress.ip_address("127.0.0.1")]


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Served]:
    """`airlock serve` over HTTP with SQLite; an admin, an approver, nothing else set."""
    async with serve_bot(tmp_path) as served:
        yield served
