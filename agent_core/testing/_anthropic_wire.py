"""How the Anthropic stand-in checks requests and shapes errors, as the real API does.

A request the real API would refuse raises `RequestError`; the server turns it, and any
scripted `Fault`, into the API's error body and headers.
"""

from __future__ import annotations

from aiohttp import web

from agent_core.testing._anthropic_script import ERROR_TYPES, Fault, JSONObject

__all__ = [
    "RequestError",
    "error_response",
    "fault_response",
    "presented_key",
    "validate",
]


class RequestError(Exception):
    """A request the real API would refuse; becomes an error response."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def validate(body: JSONObject | None, *, needs_max_tokens: bool) -> JSONObject:
    """The body when it is a well-formed Messages request; raises `RequestError` otherwise."""
    if body is None:
        raise RequestError(400, "request body must be a JSON object")
    if not isinstance(body.get("model"), str):
        raise RequestError(400, "model: Field required")
    max_tokens = body.get("max_tokens")
    if needs_max_tokens and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise RequestError(400, "max_tokens: Field required (an integer >= 1)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages: Field required (a non-empty list)")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise RequestError(400, f"messages.{index}.role: Input should be 'user' or 'assistant'")
        if not isinstance(message.get("content"), str | list):
            raise RequestError(400, f"messages.{index}.content: Field required")
    return body


def presented_key(request: web.Request) -> str | None:
    """The API key of a bearer token or the `x-api-key` header, if any."""
    bearer = request.headers.get("authorization", "")
    scheme, _, token = bearer.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def error_response(
    status: int, message: str, request_id: str, *, error_type: str | None = None
) -> web.Response:
    """An error body as the API sends it; the type follows the status unless given."""
    error = {"type": error_type or ERROR_TYPES.get(status, "api_error"), "message": message}
    body = {"type": "error", "error": error, "request_id": request_id}
    return web.json_response(body, status=status)


def fault_response(step: Fault, request_id: str) -> web.Response:
    """The response for a scripted fault, with its `retry-after` and `x-should-retry`."""
    response = error_response(step.status, step.message, request_id, error_type=step.error_type)
    if step.retry_after is not None:
        seconds = float(step.retry_after)
        response.headers["retry-after"] = (
            str(int(seconds)) if seconds.is_integer() else str(seconds)
        )
    if step.should_retry is not None:
        response.headers["x-should-retry"] = "true" if step.should_retry else "false"
    return response
