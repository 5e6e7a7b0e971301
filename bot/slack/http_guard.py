"""The door of ``/slack/events``: a request that is not a well-formed, signed Slack request
never reaches Bolt.

Bolt verifies signatures too, but reads the timestamp header with ``int()`` and the body
with ``json.loads`` before it can refuse anything, so a garbled header or body used to end
in a 500 and a stack trace. Here the method, size, headers, signature and body are checked
first: what fails gets 400 (malformed) or 401 (not signed by Slack) and one line in the log
(:mod:`bot.slack.request_log`), and costs no more than reading it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

from bot.slack.request_log import REJECTED, rejections

__all__ = ["MAX_BODY_BYTES", "MAX_JSON_DEPTH", "Rejection", "slack_request_guard"]

MAX_BODY_BYTES = 1 << 20
"""Largest body accepted (Slack's biggest payloads, views with their state, are far smaller)."""
MAX_JSON_DEPTH = 64
"""Deepest nesting accepted in a JSON payload (Slack's own go about a dozen levels deep)."""
_SIGNATURE_WINDOW_SECONDS = 300  # Slack's rule: a request more than five minutes off is stale
_FORMS = frozenset({"application/json", "application/x-www-form-urlencoded"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(kw_only=True, frozen=True)
class Rejection:
    """Why a request was refused, and with which status."""

    status: int
    reason: str


def slack_request_guard(*, path: str, signing_secret: str) -> Any:
    """An aiohttp middleware that lets only well-formed, signed POSTs to ``path`` through."""
    verifier = SignatureVerifier(signing_secret)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != path:
            return await handler(request)
        rejection = await _check(request, verifier)
        if rejection is None:
            try:
                return await handler(request)
            except web.HTTPException:
                raise
            except Exception as error:  # Bolt could not even read this signed payload
                rejection = Rejection(status=400, reason="unreadable payload")
                return _refuse(request, rejection, error=type(error).__name__)
        return _refuse(request, rejection)

    return guard


async def _check(request: web.Request, verifier: SignatureVerifier) -> Rejection | None:
    if request.method != "POST":
        return Rejection(status=400, reason="not a POST")
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return Rejection(status=400, reason="body too large")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return Rejection(status=400, reason="body too large")
    except ConnectionError:  # the sender went away before the body was whole
        return Rejection(status=400, reason="body incomplete")
    unsigned = _signature_problem(request, raw, verifier)
    if unsigned is not None:
        return Rejection(status=401, reason=unsigned)
    malformed = _body_problem(request.content_type, raw)
    return None if malformed is None else Rejection(status=400, reason=malformed)


def _signature_problem(request: web.Request, raw: bytes, verifier: SignatureVerifier) -> str | None:
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return "missing or malformed timestamp"
    if abs(time.time() - int(timestamp)) > _SIGNATURE_WINDOW_SECONDS:
        return "stale timestamp"
    if not signature.startswith("v0=") or len(signature) != 67:
        return "missing or malformed signature"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"  # Slack signs UTF-8 text; nothing else is theirs
    if not verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
        return "bad signature"
    return None


def _body_problem(content_type: str, raw: bytes) -> str | None:
    """Why Bolt could not read this body as a Slack payload (a JSON object, or a form)."""
    if content_type not in _FORMS:
        return "unsupported content type"
    try:
        body = parse_body(raw.decode("utf-8"), content_type)
    except (ValueError, RecursionError):
        return "payload is not JSON"
    if not isinstance(body, dict):
        return "payload is not a JSON object"
    if _too_deep(body):
        return "payload nested too deep"
    return None


def _too_deep(value: object) -> bool:
    """Whether ``value`` nests deeper than :data:`MAX_JSON_DEPTH` (walked without recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _refuse(request: web.Request, rejection: Rejection, **fields: str) -> web.Response:
    REJECTED.labels(reason=rejection.reason).inc()
    rejections().log(
        logging.WARNING, "slack request refused", status=rejection.status,
        reason=rejection.reason, method=request.method, bytes=request.content_length,
        peer=request.remote, **fields,
    )  # fmt: skip
    return web.Response(status=rejection.status, text=rejection.reason)
