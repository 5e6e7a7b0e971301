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

from agent_core.config import Settings
from agent_core.errors import ConfigError
from agent_core.store import open_settings_store
from agent_core.telemetry import configure_tracing
from bot import wiring
from bot.slack.app import build_client
from bot.slack.channel import SlackChannel
from bot.slack.metrics_http import serve_metrics
from bot.slack.server import build_web_app, stop_on_signals

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
        store = await open_settings_store(settings)
        stack.push_async_callback(store.close)
        if store.run_queue() is None:
            raise ConfigError([_NEEDS_REDIS])
        session = await stack.enter_async_context(aiohttp.ClientSession())
        channel = SlackChannel(client=build_client(settings, session=session), store=store,
                               approval_channel=settings.approval_channel,
                               approvers=settings.approvers,
                               approval_dms=settings.approval_dms)  # fmt: skip
        agent = await wiring.agent(settings, store, channel, stack)
        worker = agent.runs(settings)
        await serve_metrics(settings, host, port, stack)
        site = web.AppRunner(build_web_app(settings, None, store))
        await site.setup()
        stack.push_async_callback(site.cleanup)
        await web.TCPSite(site, host, port).start()
        await worker.start()
        stack.push_async_callback(worker.stop, grace_seconds=settings.shutdown_grace_seconds)
        logger.info("airlock worker is working", extra={"port": port})
        await stopped.wait()
