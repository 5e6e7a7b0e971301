"""``GET /metrics`` (Prometheus): on the main port, or alone on ``AIRLOCK_METRICS_PORT``.

In HTTP mode the main port is the one Slack's Events reach, so it is public; a port of its
own keeps the metrics where only the scraper can reach them.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent_core import ConfigError, Settings

__all__ = ["metrics_on_main_port", "metrics_page", "port_problem", "serve_metrics"]


async def metrics_page(_: web.Request) -> web.Response:
    """Every metric of the default registry, in Prometheus' text format."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_on_main_port(settings: Settings) -> bool:
    """Whether the main port serves /metrics: when no port of its own is set."""
    return settings.metrics_port is None


def port_problem(settings: Settings, port: int) -> str | None:
    """What is wrong with ``AIRLOCK_METRICS_PORT`` beside the main ``port``; None if nothing."""
    if settings.metrics_port == port:
        return f"AIRLOCK_METRICS_PORT: {port} is the main port too; give it another one"
    return None


async def serve_metrics(settings: Settings, host: str, port: int, stack: AsyncExitStack) -> None:
    """With ``AIRLOCK_METRICS_PORT`` set, serve /metrics alone there until ``stack`` closes.

    ``port`` is the main one; raises :class:`ConfigError` when the two are the same.
    """
    metrics_port = settings.metrics_port
    if metrics_port is None:
        return
    if (problem := port_problem(settings, port)) is not None:
        raise ConfigError([problem])
    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    runner = web.AppRunner(app)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, host, metrics_port).start()
