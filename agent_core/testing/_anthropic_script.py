"""The script of the Anthropic stand-in: the replies and faults it answers with, and the
requests it records.

A script is a queue of steps, each a `Reply`, a `Fault`, or a `Responder` that computes
one of them from the `RecordedRequest`. The builders below make the common steps.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = [
    "ERROR_TYPES",
    "Fault",
    "JSONObject",
    "RecordedRequest",
    "Reply",
    "Responder",
    "Step",
    "StopReason",
    "blocks",
    "fault",
    "new_id",
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
        return [tool.get("name", "") for tool in blocks((self.body or {}).get("tools"))]

    def last_user_blocks(self) -> list[JSONObject]:
        """Content blocks of the last user message."""
        users = [m for m in self.messages if m.get("role") == "user"]
        return blocks(users[-1].get("content")) if users else []

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
    return {"type": "tool_use", "id": id or new_id("toolu"), "name": name, "input": input}


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


def new_id(prefix: str) -> str:
    """A fresh id in the API's style, e.g. "msg_01..." for prefix "msg"."""
    return f"{prefix}_01{uuid.uuid4().hex[:22]}"


def blocks(content: object) -> list[JSONObject]:
    """Content as a list of blocks: a string becomes one text block, non-dicts are dropped."""
    if isinstance(content, str):
        return [text_block(content)]
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []
