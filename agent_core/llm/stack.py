"""Middleware around a model's calls, composed in one place.

What a run adds to each model call (its budget, its audit trail, its spans and metrics) is
a middleware: an async callable that gets the whole :class:`LLMRequest` and ``call_next``,
the rest of the stack, and returns the :class:`LLMResponse`. It may refuse the call (raise
before ``call_next``), change the request (pass ``dataclasses.replace(request, ...)`` on),
time it, or record what came back. :func:`llm_stack` puts middleware around a model,
outermost first, so a call's parameters are declared once, on :class:`LLMRequest`, and no
middleware re-declares them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from agent_core.errors import LLMError
from agent_core.llm.base import LLM, CountsTokens, LLMRequest, LLMResponse

__all__ = ["LLMStack", "Middleware", "Next", "llm_stack"]

Next = Callable[[LLMRequest], Awaitable[LLMResponse]]
"""The rest of the stack below a middleware: the next middleware, and last the model."""


class Middleware(Protocol):
    """Something every model call of a stack passes through."""

    async def __call__(self, request: LLMRequest, call_next: Next) -> LLMResponse:
        """Answer ``request``, normally by awaiting ``call_next`` with it (or a changed copy)."""
        ...


class LLMStack:
    """An :class:`LLM` whose calls pass through middleware on their way to the model.

    Counting tokens is free and is not a model turn, so it goes straight to the model:
    no middleware charges, audits or traces it.
    """

    def __init__(self, model: LLM, middleware: tuple[Middleware, ...]) -> None:
        self.model = model
        """The model at the bottom of the stack."""
        self.middleware = middleware
        """Outermost first: the first sees a request first and its response last."""
        call: Next = model.complete
        for layer in reversed(middleware):
            call = _link(layer, call)
        self._call = call

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """``request`` through every middleware, outermost first, then the model."""
        return await self._call(request)

    async def count_tokens(self, request: LLMRequest) -> int:
        """The model's own count; :class:`LLMError` if it cannot count."""
        if not isinstance(self.model, CountsTokens):
            raise LLMError(request.tier.value, f"{type(self.model).__name__} cannot count tokens")
        return await self.model.count_tokens(request)


def llm_stack(model: LLM, *middleware: Middleware) -> LLMStack:
    """``model`` with ``middleware`` around it, outermost first.

    ``llm_stack(model, a, b)`` calls ``a``, which calls ``b``, which calls the model; the
    response goes back through ``b``, then ``a``.
    """
    return LLMStack(model, middleware)


def _link(layer: Middleware, call_next: Next) -> Next:
    async def call(request: LLMRequest) -> LLMResponse:
        return await layer(request, call_next)

    return call
