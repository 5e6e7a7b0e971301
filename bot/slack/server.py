"""``airlock serve``: Slack over HTTP or Socket Mode, plus /healthz, /readyz and /metrics.

With a SQLite store the runs work in this process. With a Redis store they go on the shared
run queue: ``airlock serve`` also works on them (a worker in the same process) unless
started with ``--no-worker``, and ``airlock worker`` (``bot.cli.worker``) only works on them.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from agent_core import (
    Airlock,
    ChannelParts,
    ConfigError,
    Settings,
    Store,
    configure_tracing,
    settle_heap,
)
from bot.slack.admin import AdminCommands
from bot.slack.app import build_app, build_client
from bot.slack.assistant import build_assistant
from bot.slack.channel import SlackChannel
from bot.slack.feedback import register_feedback
from bot.slack.goals import GoalIntake, register_goals
from bot.slack.home import register_home
from bot.slack.http_guard import slack_request_guard
from bot.slack.listeners import register_approvals
from bot.slack.memory_commands import MemoryCommands
from bot.slack.metrics_http import metrics_on_main_port, metrics_page, serve_metrics
from bot.slack.pings import usergroup_members
from bot.slack.readiness import SLACK_CONNECTED, ConnectionErrors, Readiness, verify_token
from bot.slack.request_log import OneLineErrors, rejections

__all__ = ["build_web_app", "connect_slack", "serve", "slack_channel", "stop_on_signals"]

logger = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"


def build_web_app(
    settings: Settings, app: AsyncApp | None, store: Store, readiness: Readiness | None = None
) -> web.Application:
    """The aiohttp application: Slack's endpoint (HTTP mode, with ``app``), health, metrics.

    ``/healthz`` is liveness (the store answers); ``/readyz`` is 503 with the reasons until
    the store answers and, with ``readiness``, Slack can reach this process.
    """
    if app is None or settings.socket_mode:
        web_app = web.Application()
    else:
        web_app = app.web_app(path=SLACK_EVENTS_PATH)
        if settings.slack_signing_secret is not None:
            secret = settings.slack_signing_secret.get_secret_value()
            guard = slack_request_guard(path=SLACK_EVENTS_PATH, signing_secret=secret)
            web_app.middlewares.append(guard)

    async def healthz(_: web.Request) -> web.Response:
        if not await _store_answers(store):
            return web.json_response({"ok": False, "store": "unreachable"}, status=503)
        return web.json_response({"ok": True, "store": "ok", "model": settings.executor_model})

    async def readyz(_: web.Request) -> web.Response:
        reasons = [] if await _store_answers(store) else ["the store does not answer"]
        reasons += readiness.problems() if readiness is not None else []
        if reasons:
            return web.json_response({"ready": False, "reasons": reasons}, status=503)
        return web.json_response({"ready": True})

    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)
    if metrics_on_main_port(settings):
        web_app.router.add_get("/metrics", metrics_page)
    return web_app


async def _store_answers(store: Store) -> bool:
    try:
        await asyncio.wait_for(store.ping(), timeout=2.0)
    except Exception as error:  # any failure to reach the store means "not healthy"
        logger.warning("health check failed", extra={"error": type(error).__name__})
        return False
    return True


async def serve(
    settings: Settings, *, port: int, host: str = "0.0.0.0", worker: bool = True
) -> None:
    """Serve until SIGINT or SIGTERM; runs left unfinished by an earlier process resume.

    ``worker=False`` (a Redis store only) serves Slack and queues runs for workers.
    """
    _ignore_oauth_environment()
    # Handlers first: a SIGTERM that arrives while starting up still stops cleanly.
    stopped = stop_on_signals()
    async with AsyncExitStack() as stack:
        # Flushes spans last, after everything else has stopped; blocks, so in a thread.
        stack.push_async_callback(asyncio.to_thread, configure_tracing(settings))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        client = build_client(settings, session=session)
        airlock = await stack.enter_async_context(
            Airlock.from_settings(settings, groups=usergroup_members(client))
        )
        if airlock.queue is None and not worker:
            raise ConfigError(["--no-worker needs a Redis store (AIRLOCK_STORE_URL=redis://…):"
                               " with SQLite nothing else would work on the runs"])  # fmt: skip
        app = build_app(settings, client=client, store=airlock.store)
        intake = await connect_slack(airlock, app, client, worker=worker)
        # No access log: one line per request would let anyone fill the log at will; refused
        # requests are logged (sampled) and counted where they are refused, and what aiohttp
        # cannot even parse as HTTP (a bad Content-Length, a header too long) costs one line.
        _one_line_errors(logging.getLogger("aiohttp.server"))
        await serve_metrics(settings, host, port, stack)
        readiness = Readiness(socket_mode=settings.socket_mode)
        site = web.AppRunner(build_web_app(settings, app, airlock.store, readiness),
                             access_log=None)  # fmt: skip
        await site.setup()
        stack.push_async_callback(site.cleanup)
        await web.TCPSite(site, host, port).start()
        await _reach_slack(settings, app, client, readiness, stack)
        if airlock.works_on_runs:
            await airlock.start_runs()
            # On SIGTERM working runs get a moment to write their next checkpoint, so the
            # step in flight is kept; nothing new starts meanwhile.
            stack.push_async_callback(airlock.stop_runs,
                                      grace_seconds=settings.shutdown_grace_seconds)  # fmt: skip
        # First on the way out: goals already acknowledged become runs (or are told to ask
        # again) before the runs stop; a goal arriving meanwhile is told airlock is stopping.
        stack.push_async_callback(intake.close, grace_seconds=settings.shutdown_grace_seconds)
        mode = "socket" if settings.socket_mode else "http"
        role = "front end and worker" if airlock.works_on_runs else "front end"
        frozen = settle_heap()  # started: what it made stays out of later collections
        facts = {"mode": mode, "port": port, "role": role, "frozen_objects": frozen}
        logger.info("airlock is serving", extra=facts)
        await stopped.wait()


def slack_channel(
    settings: Settings, client: AsyncWebClient
) -> Callable[[ChannelParts], SlackChannel]:
    """How the core makes its channel: Slack, posting with ``client``."""

    def make(parts: ChannelParts) -> SlackChannel:
        return SlackChannel(client=client, store=parts.store,
                            approval_channel=settings.approval_channel,
                            approvers=settings.approvers,
                            approval_dms=settings.approval_dms)  # fmt: skip

    return make


async def connect_slack(
    airlock: Airlock, app: AsyncApp, client: AsyncWebClient, *, worker: bool = True
) -> GoalIntake:
    """The agent core behind the app: Slack as its channel, approvals wired to the buttons.

    Runs work in this process (a worker of the shared queue with Redis), or with
    ``worker=False`` are queued for the workers. Returns the goal intake, which starts the
    goals taken in the background: close it before the runs stop.
    """
    settings, store = airlock.settings, airlock.store
    channel = await airlock.connect(slack_channel(settings, client),
                                    hosting="here" if worker else "queue")  # fmt: skip
    intake = GoalIntake(store=store, submit=airlock.submit,
                        remember_status=channel.remember_status,
                        admission=airlock.admission)  # fmt: skip
    memory = airlock.memory
    curate = MemoryCommands(store=store, memory=memory.longterm if memory else None,
                            authority=airlock.authority, audit=airlock.audit)  # fmt: skip
    admin = AdminCommands(store=store, control=airlock.control, decisions=airlock.decisions,
                          submit=airlock.submit, queue=airlock.queue)  # fmt: skip
    app.assistant(build_assistant(store=store, authority=airlock.authority, admin=admin,
                                  intake=intake, channel=channel))  # fmt: skip
    register_goals(app, intake, admin, curate)
    register_feedback(app, store=store, audit=airlock.audit, memory=memory)
    register_home(app, store=store, control=airlock.control)
    register_approvals(app, service=airlock.decisions, channel=channel, intake=intake,
                       approvers_answer=settings.approvers_answer_questions,
                       schemas=airlock.input_schema)  # fmt: skip
    return intake


async def _reach_slack(
    settings: Settings,
    app: AsyncApp,
    client: AsyncWebClient,
    readiness: Readiness,
    stack: AsyncExitStack,
) -> None:
    """Check the bot token and, in Socket Mode, connect, both in the background until
    ``stack`` closes: Bolt retries a refused connection forever, and a stop signal must not
    wait for it. ``readiness`` follows how far they got."""
    tasks = [asyncio.create_task(verify_token(client, readiness), name="slack auth.test")]
    if settings.socket_mode and settings.slack_app_token is not None:
        log = _socket_mode_logger()
        errors = ConnectionErrors(readiness)
        log.filters.insert(0, errors)  # first: the one-line filter drops errors in a flood
        stack.callback(log.removeFilter, errors)
        socket_mode = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value(),
                                             logger=log)  # fmt: skip
        readiness.watch(socket_mode.client)
        stack.push_async_callback(socket_mode.close_async)
        tasks.append(asyncio.create_task(socket_mode.connect_async(), name="slack socket mode"))
    SLACK_CONNECTED.set_function(readiness.connected)
    stack.callback(SLACK_CONNECTED.set_function, lambda: 0.0)
    stack.push_async_callback(_cancelled, tasks)


async def _cancelled(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them; one that had failed is logged."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("reaching slack failed", extra={"task": task.get_name(),
                                                        "error": type(error).__name__})  # fmt: skip


def _socket_mode_logger() -> logging.Logger:
    """The Socket Mode client's logger: an envelope it cannot read costs one line."""
    return _one_line_errors(logging.getLogger("bot.socket_mode"), signed=True)


def _one_line_errors(target: logging.Logger, *, signed: bool = False) -> logging.Logger:
    if not any(isinstance(f, OneLineErrors) for f in target.filters):
        target.addFilter(OneLineErrors(rejections(signed=signed)))
    return target


def _ignore_oauth_environment() -> None:
    """Bolt turns itself into a multi-workspace OAuth app when it sees these two variables in
    the environment; airlock serves the one workspace its bot token belongs to."""
    for name in ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"):
        if os.environ.pop(name, None) is not None:
            logger.warning("ignoring %s: airlock serves a single workspace", name)
    # Read into the settings already. Left in the environment, Bolt would also pick it up and
    # warn that the client's token wins, and tool subprocesses would inherit it.
    os.environ.pop("SLACK_BOT_TOKEN", None)


def dump_tasks_on_sigusr1() -> None:
    """``kill -USR1 <pid>`` logs what every asyncio task is waiting on (a stuck process)."""

    def dump() -> None:
        for task in asyncio.all_tasks():
            frames = io.StringIO()
            task.print_stack(limit=30, file=frames)
            logger.warning("task stack", extra={"task": task.get_name(),
                                                "stack": frames.getvalue()})  # fmt: skip

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)


def stop_on_signals() -> asyncio.Event:
    """An event set on SIGINT or SIGTERM (and ``kill -USR1`` dumps the tasks' stacks)."""
    dump_tasks_on_sigusr1()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    return stopped
