"""A local stand-in for Anthropic's Messages API, for tests, benchmarks and the offline demo.

It is a real aiohttp server on 127.0.0.1 with an ephemeral port that speaks the wire format
the `anthropic` SDK expects, so code under test runs its real client, retries and error
handling. Replies come from a script: a queue of steps, each a `Reply`, a `Fault`, or a
function of the recorded request. Usage is estimated deterministically (about four characters
per token) and prompt caching is simulated from `cache_control` breakpoints.

Streaming (`"stream": true`) is refused with a 400, so a caller that needs it fails loudly.

The script's types and builders live in `_anthropic_script`, request checks and error bodies
in `_anthropic_wire`, and token usage with the prompt cache in `_anthropic_usage`; this
module is the server and the public surface of all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import NoReturn, Self

from aiohttp import web
from aiohttp.typedefs import Handler

from agent_core.testing._anthropic_script import ERROR_TYPES as ERROR_TYPES
from agent_core.testing._anthropic_script import (
    Fault,
    JSONObject,
    RecordedRequest,
    Reply,
    Responder,
    Step,
    fault,
    new_id,
    refusal_reply,
    reply,
    text_block,
    text_reply,
    tool_use_block,
    tool_use_reply,
)
from agent_core.testing._anthropic_script import StopReason as StopReason
from agent_core.testing._anthropic_usage import CacheTTL as CacheTTL
from agent_core.testing._anthropic_usage import (
    PromptCache,
    Usage,
    block_text,
    estimate_tokens,
    input_tokens,
    prompt_segments,
)
from agent_core.testing._anthropic_wire import (
    RequestError,
    error_response,
    fault_response,
    presented_key,
    validate,
)

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

_SECRET_HEADERS = frozenset({"authorization", "x-api-key"})
_REQUEST_ID = web.RequestKey("request_id", str)


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
        self.replies: list[JSONObject] = []
        """Every Message sent back, in order (usage included), for exact accounting checks."""
        """Requests that found no step, no default responder, or no route."""
        self.responder_errors: list[BaseException] = []
        """Exceptions raised by responder functions."""
        self._script: deque[Step] = deque(script)
        self._default = default
        self._api_key = api_key
        self._latency = latency
        self._cache = PromptCache(clock=clock, min_tokens=min_cacheable_tokens)
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
        request_id = new_id("req")
        request[_REQUEST_ID] = request_id
        try:
            response = await handler(request)
        except RequestError as error:
            response = error_response(error.status, error.message, request_id)
            if error.status >= 500:
                # The stand-in's own failures are deterministic: a retry only hides them.
                response.headers["x-should-retry"] = "false"
        response.headers["request-id"] = request_id
        return response

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        body = validate(self._authorised(request, recorded), needs_max_tokens=True)
        if body.get("stream"):
            raise RequestError(400, "stream: streaming is not supported by this stand-in")
        segments = prompt_segments(body)
        step = await self._next_step(recorded)
        if step is None:
            self._unexpected(recorded)
        await self._pause(step.latency + self._latency)
        if isinstance(step, Fault):
            return fault_response(step, request[_REQUEST_ID])
        usage = self._cache.account(body["model"], segments)
        message = self._message_json(step, body["model"], usage)
        self.replies.append(message)
        return web.json_response(message)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        body = validate(self._authorised(request, recorded), needs_max_tokens=False)
        return web.json_response({"input_tokens": input_tokens(body)})

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        self.unexpected.append(await self._record(request))
        message = f"Not found: {request.method} {request.path}"
        return error_response(404, message, request[_REQUEST_ID])

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
        key = presented_key(request)
        if not key:
            raise RequestError(401, "x-api-key header is required")
        if self._api_key is not None and key != self._api_key:
            raise RequestError(401, "invalid x-api-key")
        if "anthropic-version" not in recorded.headers:
            raise RequestError(400, "anthropic-version: header is required")
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
            raise RequestError(500, f"stand-in responder raised {error!r}") from error

    def _unexpected(self, recorded: RecordedRequest) -> NoReturn:
        self.unexpected.append(recorded)
        message = (
            "Anthropic stand-in: no scripted step left and no default responder "
            f"(request #{len(self.requests)}); enqueue a reply or set a default"
        )
        raise RequestError(500, message)

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    def _message_json(self, step: Reply, model: str, usage: Usage) -> JSONObject:
        estimated = sum(estimate_tokens(block_text(block)) for block in step.content)
        output_tokens = step.output_tokens if step.output_tokens is not None else max(1, estimated)
        message: JSONObject = {
            "id": new_id("msg"),
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
