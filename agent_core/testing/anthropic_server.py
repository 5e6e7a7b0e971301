"""A local stand-in for Anthropic's Messages API, for tests, benchmarks and the offline demo.

It is a real aiohttp server on 127.0.0.1 with an ephemeral port that speaks the wire format
the `anthropic` SDK expects, so code under test runs its real client, retries and error
handling. Replies come from a script: a queue of steps, each a `Reply`, a `Fault`, or a
function of the recorded request. Usage is estimated deterministically (about four characters
per token) and prompt caching is simulated from `cache_control` breakpoints.

Streaming (`"stream": true`) is refused with a 400, so a caller that needs it fails loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import itertools
import json
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal, NoReturn, Self, TypeAlias

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = [
    "AnthropicStandIn",
    "Fault",
    "RecordedRequest",
    "Reply",
    "Responder",
    "Step",
    "estimate_tokens",
    "fault",
    "input_tokens",
    "refusal_reply",
    "reply",
    "text_block",
    "text_reply",
    "tool_use_block",
    "tool_use_reply",
]

JSONObject: TypeAlias = dict[str, Any]
StopReason: TypeAlias = Literal[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
]
CacheTTL: TypeAlias = Literal["5m", "1h"]

ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_TTL_SECONDS: Mapping[CacheTTL, float] = {"5m": 300.0, "1h": 3600.0}
_MAX_BREAKPOINTS = 4
# The real API looks this many blocks back from a breakpoint for an earlier cache entry.
_LOOKBACK_BLOCKS = 20
_SECRET_HEADERS = frozenset({"authorization", "x-api-key"})
_REQUEST_ID = web.RequestKey("request_id", str)


@dataclass(kw_only=True, frozen=True)
class Reply:
    """One scripted assistant message."""

    content: list[JSONObject]
    """Content blocks exactly as they go on the wire."""
    stop_reason: StopReason = "end_turn"
    """Why the model stopped."""
    stop_sequence: str | None = None
    """The custom stop sequence that was hit, when `stop_reason` is "stop_sequence"."""
    stop_details: JSONObject | None = None
    """Structured detail for the stop, e.g. a refusal category; omitted when None."""
    output_tokens: int | None = None
    """Reported output tokens; None estimates them from the content."""
    latency: float = 0.0
    """Seconds to wait before answering, to simulate model time."""


@dataclass(kw_only=True, frozen=True)
class Fault:
    """One scripted API error."""

    status: int
    """HTTP status, e.g. 429, 500 or 529."""
    error_type: str
    """The `error.type` of the body, e.g. "overloaded_error"."""
    message: str
    """The `error.message` of the body."""
    retry_after: float | None = None
    """Seconds sent in the `retry-after` header; None sends no header."""
    should_retry: bool | None = None
    """Value of the `x-should-retry` header; None sends no header."""
    latency: float = 0.0
    """Seconds to wait before answering."""


@dataclass(kw_only=True, frozen=True)
class RecordedRequest:
    """One request the stand-in received, whatever became of it."""

    method: str
    """HTTP method."""
    path: str
    """URL path, e.g. "/v1/messages"."""
    headers: dict[str, str]
    """Headers with lowercase names; credential values are redacted."""
    body: JSONObject | None
    """The parsed JSON body, or None when it was not a JSON object."""

    @property
    def messages(self) -> list[JSONObject]:
        """The `messages` of the body, or an empty list."""
        found = (self.body or {}).get("messages")
        return found if isinstance(found, list) else []

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered in the request."""
        return [tool.get("name", "") for tool in _blocks((self.body or {}).get("tools"))]

    def last_user_blocks(self) -> list[JSONObject]:
        """Content blocks of the last user message."""
        users = [m for m in self.messages if m.get("role") == "user"]
        return _blocks(users[-1].get("content")) if users else []

    def last_user_text(self) -> str:
        """Text of the last user message, its text blocks joined by newlines."""
        texts = [b.get("text", "") for b in self.last_user_blocks() if b.get("type") == "text"]
        return "\n".join(texts)

    def tool_results(self) -> list[JSONObject]:
        """The `tool_result` blocks of the last user message."""
        return [b for b in self.last_user_blocks() if b.get("type") == "tool_result"]


Responder: TypeAlias = Callable[[RecordedRequest], "Reply | Fault | Awaitable[Reply | Fault]"]
"""Computes the outcome of a request; may be sync or async."""
Step: TypeAlias = "Reply | Fault | Responder"
"""One entry of the script."""


def text_block(text: str) -> JSONObject:
    """A `text` content block."""
    return {"type": "text", "text": text}


def tool_use_block(name: str, input: JSONObject, *, id: str | None = None) -> JSONObject:
    """A `tool_use` content block with a fresh `toolu_...` id unless one is given."""
    return {"type": "tool_use", "id": id or _new_id("toolu"), "name": name, "input": input}


def reply(
    *,
    content: Iterable[JSONObject],
    stop_reason: StopReason = "end_turn",
    stop_sequence: str | None = None,
    output_tokens: int | None = None,
    latency: float = 0.0,
) -> Reply:
    """A reply with any content and any stop reason."""
    return Reply(
        content=list(content),
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        output_tokens=output_tokens,
        latency=latency,
    )


def text_reply(text: str, *, stop_reason: StopReason = "end_turn", latency: float = 0.0) -> Reply:
    """A reply of one text block."""
    return reply(content=[text_block(text)], stop_reason=stop_reason, latency=latency)


def tool_use_reply(
    name: str,
    input: JSONObject,
    *,
    text: str | None = None,
    id: str | None = None,
    latency: float = 0.0,
) -> Reply:
    """A reply that calls one tool, optionally after some text."""
    content = [text_block(text)] if text else []
    content.append(tool_use_block(name, input, id=id))
    return reply(content=content, stop_reason="tool_use", latency=latency)


def refusal_reply(text: str = "", *, category: str | None = None) -> Reply:
    """A reply stopped by the safety classifiers, with `stop_details` as the API sends them."""
    details = {"type": "refusal", "category": category, "explanation": None}
    content = [text_block(text)] if text else []
    return Reply(content=content, stop_reason="refusal", stop_details=details)


def fault(
    status: int,
    *,
    retry_after: float | None = None,
    message: str | None = None,
    error_type: str | None = None,
    should_retry: bool | None = None,
    latency: float = 0.0,
) -> Fault:
    """An API error; the error type follows the status as on the real API (529 -> overloaded)."""
    kind = error_type or ERROR_TYPES.get(status, "api_error")
    return Fault(
        status=status,
        error_type=kind,
        message=message or f"stand-in injected {kind}",
        retry_after=retry_after,
        should_retry=should_retry,
        latency=latency,
    )


def estimate_tokens(text: str) -> int:
    """Deterministic token estimate: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def input_tokens(body: JSONObject) -> int:
    """Estimated input tokens of a Messages request body (tools, system and messages)."""
    return sum(segment.tokens for segment in _segments(body))


class _RequestError(Exception):
    """A request the real API would refuse; becomes an error response."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(kw_only=True, frozen=True)
class _Segment:
    """One cacheable unit of the prompt: a tool, a system block or a message block."""

    tokens: int
    """Estimated tokens of this unit."""
    canonical: str
    """Stable text that identifies the unit (role and block, without cache_control)."""
    ttl: CacheTTL | None
    """The cache TTL when the unit carries a breakpoint."""


@dataclass(kw_only=True)
class _Usage:
    """Input-side usage of one request."""

    input_tokens: int
    """Tokens after the last cache breakpoint, or all when nothing is cached."""
    created: dict[CacheTTL, int] = field(default_factory=lambda: {"5m": 0, "1h": 0})
    """Tokens written to the cache, by TTL."""
    read: int = 0
    """Tokens read from the cache."""

    def to_json(self, output_tokens: int) -> JSONObject:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": sum(self.created.values()),
            "cache_read_input_tokens": self.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.created["5m"],
                "ephemeral_1h_input_tokens": self.created["1h"],
            },
            "service_tier": "standard",
        }


class _PromptCache:
    """Prefix cache keyed by a running hash of the prompt, with TTLs on an injected clock."""

    def __init__(self, *, clock: Callable[[], float], min_tokens: int) -> None:
        self._clock = clock
        self._min_tokens = min_tokens
        self._expiry: dict[str, float] = {}

    def account(self, model: str, segments: list[_Segment]) -> _Usage:
        now = self._clock()
        keys = _prefix_keys(model, segments)
        totals = list(itertools.accumulate(s.tokens for s in segments))
        marks = [i for i, s in enumerate(segments) if s.ttl is not None]
        hit = self._longest_hit(keys, marks, now)
        usage = _Usage(input_tokens=0, read=totals[hit] if hit >= 0 else 0)
        done = usage.read
        for mark in marks:
            ttl = segments[mark].ttl or "5m"
            if totals[mark] < self._min_tokens:
                continue
            self._expiry[keys[mark]] = now + _TTL_SECONDS[ttl]
            if mark > hit:
                usage.created[ttl] += totals[mark] - done
                done = totals[mark]
        if hit >= 0:
            self._expiry[keys[hit]] = max(self._expiry[keys[hit]], now + _TTL_SECONDS["5m"])
        usage.input_tokens = (totals[-1] if totals else 0) - done
        return usage

    def _longest_hit(self, keys: list[str], marks: list[int], now: float) -> int:
        hits = [-1]
        for mark in marks:
            window = range(mark, max(mark - _LOOKBACK_BLOCKS, -1), -1)
            hits.extend(itertools.islice((i for i in window if self._alive(keys[i], now)), 1))
        return max(hits)

    def _alive(self, key: str, now: float) -> bool:
        return self._expiry.get(key, -math.inf) > now


def _prefix_keys(model: str, segments: list[_Segment]) -> list[str]:
    digest = hashlib.sha256(model.encode())
    keys = []
    for segment in segments:
        digest.update(segment.canonical.encode())
        keys.append(digest.copy().hexdigest())
    return keys


def _new_id(prefix: str) -> str:
    return f"{prefix}_01{uuid.uuid4().hex[:22]}"


def _blocks(content: object) -> list[JSONObject]:
    if isinstance(content, str):
        return [text_block(content)]
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []


def _block_text(block: JSONObject) -> str:
    if block.get("type") == "text" and isinstance(block.get("text"), str):
        return str(block["text"])
    return json.dumps(block, sort_keys=True)


def _segment(role: str, block: JSONObject) -> _Segment:
    bare = {k: v for k, v in block.items() if k != "cache_control"}
    mark = block.get("cache_control")
    return _Segment(
        tokens=estimate_tokens(_block_text(bare)),
        canonical=json.dumps([role, bare], sort_keys=True),
        ttl=_ttl(mark) if mark is not None else None,
    )


def _ttl(mark: object) -> CacheTTL:
    ttl: object = mark.get("ttl", "5m") if isinstance(mark, dict) else None
    if ttl == "5m":
        return "5m"
    if ttl == "1h":
        return "1h"
    raise _RequestError(
        400, f"cache_control: expected {{'type': 'ephemeral', 'ttl': '5m'|'1h'}}, got {mark!r}"
    )


def _segments(body: JSONObject) -> list[_Segment]:
    segments = [_segment("tool", tool) for tool in _blocks(body.get("tools"))]
    segments += [_segment("system", block) for block in _blocks(body.get("system"))]
    for message in _blocks(body.get("messages")):
        role = str(message.get("role"))
        segments += [_segment(role, block) for block in _blocks(message.get("content"))]
    top = body.get("cache_control")
    if top is not None and segments and segments[-1].ttl is None:
        segments[-1] = replace(segments[-1], ttl=_ttl(top))
    found = sum(1 for s in segments if s.ttl is not None)
    if found > _MAX_BREAKPOINTS:
        raise _RequestError(
            400,
            f"A maximum of {_MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {found}.",
        )
    return segments


def _validate(body: JSONObject | None, *, needs_max_tokens: bool) -> JSONObject:
    if body is None:
        raise _RequestError(400, "request body must be a JSON object")
    if not isinstance(body.get("model"), str):
        raise _RequestError(400, "model: Field required")
    max_tokens = body.get("max_tokens")
    if needs_max_tokens and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise _RequestError(400, "max_tokens: Field required (an integer >= 1)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _RequestError(400, "messages: Field required (a non-empty list)")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _RequestError(
                400, f"messages.{index}.role: Input should be 'user' or 'assistant'"
            )
        if not isinstance(message.get("content"), str | list):
            raise _RequestError(400, f"messages.{index}.content: Field required")
    return body


def _presented_key(request: web.Request) -> str | None:
    bearer = request.headers.get("authorization", "")
    scheme, _, token = bearer.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def _error_response(
    status: int, message: str, request_id: str, *, error_type: str | None = None
) -> web.Response:
    error = {"type": error_type or ERROR_TYPES.get(status, "api_error"), "message": message}
    body = {"type": "error", "error": error, "request_id": request_id}
    return web.json_response(body, status=status)


def _fault_response(step: Fault, request_id: str) -> web.Response:
    response = _error_response(step.status, step.message, request_id, error_type=step.error_type)
    if step.retry_after is not None:
        seconds = float(step.retry_after)
        response.headers["retry-after"] = (
            str(int(seconds)) if seconds.is_integer() else str(seconds)
        )
    if step.should_retry is not None:
        response.headers["x-should-retry"] = "true" if step.should_retry else "false"
    return response


class AnthropicStandIn:
    """A scripted Messages API server; use as `async with AnthropicStandIn() as server:`."""

    def __init__(
        self,
        *,
        script: Iterable[Step] = (),
        default: Responder | None = None,
        api_key: str | None = None,
        latency: float = 0.0,
        min_cacheable_tokens: int = 0,
        clock: Callable[[], float] = time.monotonic,
        check_on_exit: bool = True,
    ) -> None:
        """Configure the server; nothing listens until `start()`.

        `default` answers when the script is empty (for benchmarks); `api_key`, when set, is
        the only credential accepted; `latency` is added to every scripted step;
        `min_cacheable_tokens` mimics the model's minimum cacheable prompt; `check_on_exit`
        makes `__aexit__` call `assert_script_consumed()`.
        """
        self.requests: list[RecordedRequest] = []
        """Every request received, in order."""
        self.unexpected: list[RecordedRequest] = []
        """Requests that found no step, no default responder, or no route."""
        self.responder_errors: list[BaseException] = []
        """Exceptions raised by responder functions."""
        self._script: deque[Step] = deque(script)
        self._default = default
        self._api_key = api_key
        self._latency = latency
        self._cache = _PromptCache(clock=clock, min_tokens=min_cacheable_tokens)
        self._check_on_exit = check_on_exit
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """The URL to pass as `base_url` to the SDK, e.g. "http://127.0.0.1:54321"."""
        if self._base_url is None:
            raise RuntimeError("AnthropicStandIn is not started")
        return self._base_url

    @property
    def pending(self) -> int:
        """Number of scripted steps not yet consumed."""
        return len(self._script)

    def enqueue(self, *steps: Step) -> None:
        """Append steps to the script."""
        self._script.extend(steps)

    def set_default(self, responder: Responder | None) -> None:
        """Set the responder used when the script is empty."""
        self._default = responder

    def message_requests(self) -> list[RecordedRequest]:
        """The recorded POSTs to /v1/messages."""
        return [r for r in self.requests if r.path == "/v1/messages"]

    def assert_script_consumed(self) -> None:
        """Fail when steps are left, a request was unexpected, or a responder raised."""
        problems = [f"{len(self._script)} scripted step(s) never requested"] if self._script else []
        problems += [f"unexpected {r.method} {r.path}: {r.body!r:.300}" for r in self.unexpected]
        problems += [f"responder raised {e!r}" for e in self.responder_errors]
        if problems:
            raise AssertionError("Anthropic stand-in: " + "; ".join(problems))

    async def wait_for_requests(self, count: int) -> list[RecordedRequest]:
        """Wait until at least `count` requests were received; wrap it in `asyncio.timeout`."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)

    async def start(self) -> None:
        """Listen on 127.0.0.1 with an ephemeral port."""
        app = web.Application(middlewares=[self._errors], client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._stopping.clear()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Stop listening; replies still waiting out their latency are cut short."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if exc is None and self._check_on_exit:
            self.assert_script_consumed()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = _new_id("req")
        request[_REQUEST_ID] = request_id
        try:
            response = await handler(request)
        except _RequestError as error:
            response = _error_response(error.status, error.message, request_id)
            if error.status >= 500:
                # The stand-in's own failures are deterministic: a retry only hides them.
                response.headers["x-should-retry"] = "false"
        response.headers["request-id"] = request_id
        return response

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        body = _validate(self._authorised(request, recorded), needs_max_tokens=True)
        if body.get("stream"):
            raise _RequestError(400, "stream: streaming is not supported by this stand-in")
        segments = _segments(body)
        step = await self._next_step(recorded)
        if step is None:
            self._unexpected(recorded)
        await self._pause(step.latency + self._latency)
        if isinstance(step, Fault):
            return _fault_response(step, request[_REQUEST_ID])
        usage = self._cache.account(body["model"], segments)
        return web.json_response(self._message_json(step, body["model"], usage))

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        body = _validate(self._authorised(request, recorded), needs_max_tokens=False)
        return web.json_response({"input_tokens": input_tokens(body)})

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        self.unexpected.append(await self._record(request))
        message = f"Not found: {request.method} {request.path}"
        return _error_response(404, message, request[_REQUEST_ID])

    async def _record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        headers = {
            k.lower(): "<redacted>" if k.lower() in _SECRET_HEADERS else v
            for k, v in request.headers.items()
        }
        body = parsed if isinstance(parsed, dict) else None
        recorded = RecordedRequest(
            method=request.method, path=request.path, headers=headers, body=body
        )
        async with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()
        return recorded

    def _authorised(self, request: web.Request, recorded: RecordedRequest) -> JSONObject | None:
        key = _presented_key(request)
        if not key:
            raise _RequestError(401, "x-api-key header is required")
        if self._api_key is not None and key != self._api_key:
            raise _RequestError(401, "invalid x-api-key")
        if "anthropic-version" not in recorded.headers:
            raise _RequestError(400, "anthropic-version: header is required")
        return recorded.body

    async def _next_step(self, recorded: RecordedRequest) -> Reply | Fault | None:
        step = self._script.popleft() if self._script else self._default
        if step is None or isinstance(step, Reply | Fault):
            return step
        try:
            outcome = step(recorded)
            return await outcome if inspect.isawaitable(outcome) else outcome
        except Exception as error:  # surfaced by assert_script_consumed, not swallowed
            self.responder_errors.append(error)
            raise _RequestError(500, f"stand-in responder raised {error!r}") from error

    def _unexpected(self, recorded: RecordedRequest) -> NoReturn:
        self.unexpected.append(recorded)
        message = (
            "Anthropic stand-in: no scripted step left and no default responder "
            f"(request #{len(self.requests)}); enqueue a reply or set a default"
        )
        raise _RequestError(500, message)

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    def _message_json(self, step: Reply, model: str, usage: _Usage) -> JSONObject:
        estimated = sum(estimate_tokens(_block_text(block)) for block in step.content)
        output_tokens = step.output_tokens if step.output_tokens is not None else max(1, estimated)
        message: JSONObject = {
            "id": _new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": step.content,
            "stop_reason": step.stop_reason,
            "stop_sequence": step.stop_sequence,
            "usage": usage.to_json(output_tokens),
        }
        if step.stop_details is not None:
            message["stop_details"] = step.stop_details
        return message
