"""``airlock serve``: Slack over HTTP or Socket Mode, plus /healthz and /metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import AsyncExitStack

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.anthropic_llm import AnthropicLLM
from agent_core.approvals import ApprovalPolicy
from agent_core.config import Settings
from agent_core.control import RunControl
from agent_core.limits import Admission, Limits
from agent_core.run_queue import RunQueue
from agent_core.runner import Runner
from agent_core.store import Store, open_settings_store
from agent_core.telemetry import configure_tracing
from bot import wiring
from bot.admin import AdminCommands
from bot.app import build_app, build_client
from bot.goals import GoalIntake, register_goals
from bot.home import register_home
from bot.listeners import register_approvals
from bot.memory_commands import MemoryCommands
from bot.slack_channel import SlackChannel

__all__ = ["build_web_app", "serve"]

logger = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"


def build_web_app(settings: Settings, app: AsyncApp, store: Store) -> web.Application:
    """The aiohttp application: Slack's endpoint (in HTTP mode), health and metrics."""
    web_app = web.Application() if settings.socket_mode else app.web_app(path=SLACK_EVENTS_PATH)

    async def healthz(_: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(store.ping(), timeout=2.0)
        except Exception as error:  # any failure to reach the store means "not healthy"
            logger.warning("health check failed", extra={"error": type(error).__name__})
            return web.json_response({"ok": False, "store": "unreachable"}, status=503)
        return web.json_response({"ok": True, "store": "ok", "model": settings.executor_model})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/metrics", metrics)
    return web_app


async def serve(settings: Settings, *, port: int, host: str = "0.0.0.0") -> None:
    """Serve until SIGINT or SIGTERM; runs left unfinished by an earlier process resume."""
    _ignore_oauth_environment()
    # Handlers first: a SIGTERM that arrives while starting up still stops cleanly.
    stopped = _stop_on_signals()
    async with AsyncExitStack() as stack:
        # Flushes spans last, after everything else has stopped; blocks, so in a thread.
        stack.push_async_callback(asyncio.to_thread, configure_tracing(settings))
        store = await open_settings_store(settings)
        stack.push_async_callback(store.close)
        client = build_client(settings)
        app = build_app(settings, client=client)
        runs = await _agent(settings, store, client, app, stack)
        site = web.AppRunner(build_web_app(settings, app, store))
        await site.setup()
        stack.push_async_callback(site.cleanup)
        await web.TCPSite(site, host, port).start()
        if settings.socket_mode and settings.slack_app_token is not None:
            socket_mode = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value())
            await socket_mode.connect_async()
            stack.push_async_callback(socket_mode.close_async)
        await runs.start()
        # On SIGTERM working runs get a moment to write their next checkpoint, so the step
        # in flight is kept; nothing new starts meanwhile.
        stack.push_async_callback(runs.stop, grace_seconds=settings.shutdown_grace_seconds)
        mode = "socket" if settings.socket_mode else "http"
        logger.info("airlock is serving", extra={"mode": mode, "port": port})
        await stopped.wait()


async def _agent(
    settings: Settings, store: Store, client: AsyncWebClient, app: AsyncApp, stack: AsyncExitStack
) -> Runner:
    """The agent core behind the app: Slack as its channel, approvals wired to the buttons."""
    llm = await stack.enter_async_context(AnthropicLLM.from_settings(settings))
    memory = wiring.memory(settings, store, stack)
    registry = await wiring.tools(
        settings, stack, report=lambda line: logger.warning(line), memory=memory
    )
    channel = SlackChannel(client=client, store=store, approval_channel=settings.approval_channel,
                           approvers=settings.approvers)  # fmt: skip
    runner = Runner(
        store=store,
        orchestrator=wiring.orchestrator(settings, store, llm, registry, channel, memory=memory),
        channel=channel,
        policy=ApprovalPolicy.from_settings(settings),
        queue=RunQueue(limit=settings.max_concurrent_runs),
    )
    admission = Admission(store=store, limits=Limits.from_settings(settings))
    intake = GoalIntake(store=store, submit=runner.submit,
                        remember_status=channel.remember_status, admission=admission)  # fmt: skip
    service = wiring.decisions(settings, store, registry, channel)
    control = RunControl(store=store, authority=service.authority, audit=service.audit)
    curate = MemoryCommands(store=store, memory=memory.longterm if memory else None,
                            authority=service.authority, audit=service.audit)  # fmt: skip
    register_goals(
        app,
        intake,
        AdminCommands(store=store, control=control, decisions=service, submit=runner.submit),
        curate,
    )
    register_home(app, store=store, control=control)
    register_approvals(app, service=service, channel=channel, intake=intake)
    return runner


def _ignore_oauth_environment() -> None:
    """Bolt turns itself into a multi-workspace OAuth app when it sees these two variables in
    the environment; airlock serves the one workspace its bot token belongs to."""
    for name in ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"):
        if os.environ.pop(name, None) is not None:
            logger.warning("ignoring %s: airlock serves a single workspace", name)


def _stop_on_signals() -> asyncio.Event:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    return stopped
