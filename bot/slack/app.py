"""Builds the slack-bolt AsyncApp that is airlock's face in Slack."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import ValidationError
from slack_bolt.async_app import AsyncApp
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from agent_core import NotFound, Settings, Store
from bot.slack.payloads import payload_problem
from bot.slack.request_log import REJECTED, rejections

__all__ = [
    "ack_button_clicks_first",
    "answer_errors",
    "build_app",
    "build_client",
    "drop_replays",
    "refuse_malformed",
]

_REPLAY_TTL_SECONDS = 3600.0  # Slack retries an event for well under an hour
_MALFORMED = (KeyError, IndexError, TypeError, AttributeError, ValueError, NotFound)
"""What a listener raises when a (signed) payload lacks what it needs or names nothing real;
pydantic's ``ValidationError`` and ``json``'s errors are ``ValueError``s."""


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
    inside its five minutes) is acknowledged and does nothing. A listener that fails, and a
    request no listener wants, cost one log line (:func:`answer_errors`).
    """
    secret = settings.slack_signing_secret
    app = AsyncApp(
        client=client or build_client(settings),
        signing_secret=secret.get_secret_value() if secret else None,
        # Socket Mode traffic is authenticated by the app-level token, not signed.
        request_verification_enabled=not settings.socket_mode,
        raise_error_for_unhandled_request=True,
    )
    app.use(_Called(refuse_malformed))
    app.use(_Called(ack_button_clicks_first))
    if store is not None:
        app.use(_Called(drop_replays(store)))
    app.error(answer_errors)
    return app


Next = Callable[[], Awaitable[Any]]
"""Bolt's ``next()``: the request goes on to the next middleware, then the listeners."""
Middleware = Callable[[AsyncBoltRequest, Next], Awaitable[BoltResponse | None]]
"""A global middleware of this app: the request, and ``next``."""


@dataclass(frozen=True, eq=False)
class _Called(AsyncMiddleware):
    """Bolt calls a middleware function through keyword injection, which for every request
    inspects what it asks for and builds each argument (a third of what airlock added to a
    mention's acknowledgement over a bare app's); these are called with the request itself."""

    middleware: Middleware

    async def async_process(
        self, *, req: AsyncBoltRequest, resp: BoltResponse, next: Next
    ) -> BoltResponse | None:
        return await self.middleware(req, next)

    @property
    def name(self) -> str:
        return f"{__name__}.{getattr(self.middleware, '__name__', 'middleware')}"


async def refuse_malformed(req: AsyncBoltRequest, next: Next) -> BoltResponse | None:
    """Refuse, before any listener, a payload without the shape Slack gives its kind: 400,
    or for an event 200 (Slack retries an event that is not acknowledged, and a malformed
    one stays malformed)."""
    body = req.body
    problem = payload_problem(body)
    if problem is None:
        await next()
        return None
    REJECTED.labels(reason="malformed payload").inc()
    rejections(signed=True).log(logging.WARNING, "slack payload refused", problem=problem)
    return BoltResponse(status=200 if body.get("type") == "event_callback" else 400, body="")


async def ack_button_clicks_first(req: AsyncBoltRequest, next: Next) -> None:
    """Acknowledge a button click before its listener starts.

    Bolt's runner starts a listener as a task and then polls for ``ack()`` every 10 ms, so
    even a listener that acks first answers Slack ~10 ms late; acknowledged here, the runner
    finds the answer ready at once. (Modal submissions are not, since they may answer with
    errors.)
    """
    if req.body.get("type") == "block_actions":
        await req.context.ack()
    await next()


def drop_replays(store: Store) -> Middleware:
    """A middleware that lets each delivery through once, in every process sharing ``store``.

    An event is known by its ``event_id`` (Slack's retries carry the same one); anything else
    by what its signature covers, the timestamp and the exact body: a replay within the
    signature's five minutes repeats both (and a command's or a click's body holds its own
    ``trigger_id``), while nothing signed anew is ever taken for a replay.

    An app mention is let through unclaimed: its one listener, goal intake, claims the same
    ``event_id`` durably after the acknowledgement and before anything is said or stored
    (:meth:`bot.slack.goals.GoalIntake.take`), so the acknowledgement waits for no write.
    """

    async def drop_replay(req: AsyncBoltRequest, next: Next) -> BoltResponse | None:
        body = req.body
        key = None if _claimed_by_its_listener(body) else _delivery(req, body)
        if key is None or await store.claim_idempotency_key(key, ttl_seconds=_REPLAY_TTL_SECONDS):
            await next()
            return None
        REJECTED.labels(reason="delivered again").inc()
        retry = req.headers.get("x-slack-retry-num", [None])[0]
        rejections(signed=True).log(logging.INFO, "slack delivery repeated; dropped",
                                    kind=body.get("type"), retry=retry)  # fmt: skip
        return BoltResponse(status=200, body="")

    return drop_replay


def _claimed_by_its_listener(body: dict[str, Any]) -> bool:
    event = body.get("event")
    return (
        body.get("type") == "event_callback"
        and isinstance(event, dict)
        and event.get("type") == "app_mention"
    )


def _delivery(req: AsyncBoltRequest, body: dict[str, Any]) -> str | None:
    event_id = body.get("event_id")
    if body.get("type") == "event_callback" and isinstance(event_id, str) and event_id:
        return f"slack-request:event:{event_id[:200]}"
    if req.raw_body:
        timestamp = req.headers.get("x-slack-request-timestamp", [""])[0]
        signed = f"{timestamp}:{req.raw_body}".encode()
        return "slack-request:signed:" + hashlib.sha256(signed).hexdigest()
    return None  # Socket Mode: the connection is authenticated, and events carry event ids


async def answer_errors(
    error: Exception, body: dict[str, Any], response: BoltResponse | None
) -> BoltResponse | None:
    """Bolt's error handler: one log line, no stack trace, and a status that says whose fault
    it was. A request no listener wants is acknowledged (so Slack does not retry it); a
    payload a listener could not use gets 400; anything else 500."""
    kind = body.get("type") if isinstance(body, dict) else None
    if isinstance(error, BoltUnhandledRequestError):
        REJECTED.labels(reason="unhandled").inc()
        rejections(signed=True).log(logging.INFO, "slack request not handled", kind=kind)
        return BoltResponse(status=200, body="")
    malformed = isinstance(error, _MALFORMED)
    REJECTED.labels(reason="malformed payload" if malformed else "listener failed").inc()
    level = logging.WARNING if malformed else logging.ERROR
    rejections(signed=True).log(level, "slack request failed", kind=kind,
                                error=type(error).__name__, detail=_detail(error),
                                at=_where(error))  # fmt: skip
    if response is None:
        return None  # acknowledged already: Slack has its answer
    return BoltResponse(status=400 if malformed else 500, body="")


def _detail(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"[:200]
    return str(error)[:200]


def _where(error: Exception) -> str:
    """File and line where ``error`` was raised: enough to find it, without a stack trace."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if frame is None:
        return "unknown"
    return f"{frame.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.tb_lineno}"
