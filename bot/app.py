"""Builds the slack-bolt AsyncApp that is airlock's face in Slack."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.config import Settings
from agent_core.store import Store

__all__ = ["ack_button_clicks_first", "build_app", "build_client", "drop_replays"]

logger = logging.getLogger(__name__)

_REPLAY_TTL_SECONDS = 3600.0  # Slack retries an event for well under an hour


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


def build_app(
    settings: Settings, *, client: AsyncWebClient | None = None, store: Store | None = None
) -> AsyncApp:
    """The Bolt app: verifies every HTTP request's signature and acknowledges at once.

    With ``store``, a request delivered again (a Slack retry, or a replay of a signed request
    inside its five minutes) is acknowledged and does nothing.
    """
    secret = settings.slack_signing_secret
    app = AsyncApp(
        client=client or build_client(settings),
        signing_secret=secret.get_secret_value() if secret else None,
        # Socket Mode traffic is authenticated by the app-level token, not signed.
        request_verification_enabled=not settings.socket_mode,
    )
    app.use(ack_button_clicks_first)
    if store is not None:
        app.use(drop_replays(store))
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


def drop_replays(store: Store) -> Callable[..., Awaitable[BoltResponse | None]]:
    """A middleware that lets each delivery through once, in every process sharing ``store``.

    An event is known by its ``event_id`` (Slack's retries carry the same one); anything else
    by what its signature covers, the timestamp and the exact body: a replay within the
    signature's five minutes repeats both (and a command's or a click's body holds its own
    ``trigger_id``), while nothing signed anew is ever taken for a replay.
    """

    async def drop_replay(
        req: AsyncBoltRequest, body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        key = _delivery(req, body)
        if key is None or await store.claim_idempotency_key(key, ttl_seconds=_REPLAY_TTL_SECONDS):
            await next()
            return None
        logger.info("slack delivery repeated; dropped", extra={"kind": body.get("type"),
                    "retry": req.headers.get("x-slack-retry-num", [None])[0]})  # fmt: skip
        return BoltResponse(status=200, body="")

    return drop_replay


def _delivery(req: AsyncBoltRequest, body: dict[str, Any]) -> str | None:
    event_id = body.get("event_id")
    if body.get("type") == "event_callback" and isinstance(event_id, str) and event_id:
        return f"slack-request:event:{event_id[:200]}"
    if req.raw_body:
        timestamp = req.headers.get("x-slack-request-timestamp", [""])[0]
        signed = f"{timestamp}:{req.raw_body}".encode()
        return "slack-request:signed:" + hashlib.sha256(signed).hexdigest()
    return None  # Socket Mode: the connection is authenticated, and events carry event ids
