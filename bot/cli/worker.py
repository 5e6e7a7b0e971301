"""``airlock worker``: works on queued runs of a Redis deployment; serves /healthz and /metrics.

It has no Slack endpoint: goals, buttons and commands reach the front ends
(``airlock serve --no-worker``), which queue runs; a worker posts to Slack as the run goes
(progress, approval requests) with the same bot token.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

import aiohttp
from aiohttp import web

from agent_core import Airlock, ConfigError, Settings, configure_tracing, settle_heap
from bot.slack.app import build_client
from bot.slack.metrics_http import serve_metrics
from bot.slack.pings import usergroup_members
from bot.slack.server import build_web_app, slack_channel, stop_on_signals

__all__ = ["work"]

logger = logging.getLogger(__name__)

_NEEDS_REDIS = (
    "airlock worker needs a Redis store (AIRLOCK_STORE_URL=redis://…); "
    "with SQLite, `airlock serve` works on the runs itself"
)


async def work(settings: Settings, *, port: int, host: str = "0.0.0.0") -> None:
    """Work on queued runs until SIGINT or SIGTERM, then hand the working ones over."""
    stopped = stop_on_signals()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(asyncio.to_thread, configure_tracing(settings))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        client = build_client(settings, session=session)
        airlock = await stack.enter_async_context(
            Airlock.from_settings(settings, groups=usergroup_members(client))
        )
        if airlock.queue is None:
            raise ConfigError([_NEEDS_REDIS])
        await airlock.connect(slack_channel(settings, client))
        await serve_metrics(settings, host, port, stack)
        site = web.AppRunner(build_web_app(settings, None, airlock.store))
        await site.setup()
        stack.push_async_callback(site.cleanup)
        await web.TCPSite(site, host, port).start()
        await airlock.start_runs()
        stack.push_async_callback(airlock.stop_runs,
                                  grace_seconds=settings.shutdown_grace_seconds)  # fmt: skip
        frozen = settle_heap()  # started: what it made stays out of later collections
        logger.info("airlock worker is working", extra={"port": port, "frozen_objects": frozen})
        await stopped.wait()
