"""Builds the slack-bolt AsyncApp that is airlock's face in Slack."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.config import Settings

__all__ = ["ack_button_clicks_first", "build_app", "build_client"]


def build_client(
    settings: Settings, *, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """The Slack Web API client, pointed at ``SLACK_API_URL``.

    With ``session`` every call reuses its connections; without one the SDK opens a new
    session (a new TCP and TLS handshake) for each call, which a server cannot afford.
    """
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=int(settings.slack_timeout_seconds),
        session=session,
    )
    # Rate limits (429 + Retry-After) and dropped connections are retried by the SDK itself.
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    return client


def build_app(settings: Settings, *, client: AsyncWebClient | None = None) -> AsyncApp:
    """The Bolt app: verifies every HTTP request's signature and acknowledges at once."""
    secret = settings.slack_signing_secret
    app = AsyncApp(
        client=client or build_client(settings),
        signing_secret=secret.get_secret_value() if secret else None,
        # Socket Mode traffic is authenticated by the app-level token, not signed.
        request_verification_enabled=not settings.socket_mode,
    )
    app.use(ack_button_clicks_first)
    return app


async def ack_button_clicks_first(
    body: dict[str, Any], ack: AsyncAck, next: Callable[[], Awaitable[None]]
) -> None:
    """Acknowledge a button click before its listener starts.

    Bolt's runner starts a listener as a task and then polls for ``ack()`` every 10 ms, so
    even a listener that acks first answers Slack ~10 ms late; acknowledged here, the runner
    finds the answer ready at once. (Modal submissions are not, since they may answer with
    errors.)
    """
    if body.get("type") == "block_actions":
        await ack()
    await next()
