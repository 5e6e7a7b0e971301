"""Model calls as spans and metrics: a middleware around the run's LLM."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from agent_core.errors import LLMError
from agent_core.llm import LLM, LLMRequest, LLMResponse, ModelTier, NamesModels, Next, Usage
from agent_core.telemetry import _conventions as gen_ai
from agent_core.telemetry import _metrics
from agent_core.telemetry._providers import instruments
from agent_core.telemetry._spans import current_conversation, error_type, span, text

_OUTCOMES = {"529": "overloaded", "429": "rate_limited", "timeout": "timeout"}
"""``airlock_model_call_seconds`` outcomes worth an alert of their own, by error code."""


@runtime_checkable
class KnowsServer(Protocol):
    """A model client that can say where its calls go."""

    def server_address(self) -> tuple[str, int]:
        """Host and port of the API."""
        ...


@dataclass(kw_only=True)
class ObservedCalls:
    """A middleware (:mod:`agent_core.llm.stack`) that makes every model call a
    ``chat {model}`` span, timed and counted.

    The span and the two GenAI client histograms follow the conventions (see
    :mod:`agent_core.telemetry._conventions`): ``gen_ai.usage.input_tokens`` counts every input
    token, cached ones included, and cache reads and writes have attributes of their own.
    When tracing is on, the anthropic SDK's span of the HTTP call is its child. Counting
    tokens is free and not a model turn: neither a span nor counted.
    """

    model: LLM
    """The model at the bottom of the stack, asked once which model a tier calls and where."""
    _names: NamesModels | None = field(init=False, default=None)
    _server: dict[str, AttributeValue] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        # Asked once: a runtime Protocol check on every call would cost more than the span.
        self._names = self.model if isinstance(self.model, NamesModels) else None
        if isinstance(self.model, KnowsServer):
            host, port = self.model.server_address()
            self._server = {gen_ai.SERVER_ADDRESS: host, gen_ai.SERVER_PORT: port}

    async def __call__(self, request: LLMRequest, call_next: Next) -> LLMResponse:
        """The call inside its span, timed and counted, answered or failed."""
        tier = request.tier
        model = self.model_for(tier)
        with span(f"chat {model}", SpanKind.CLIENT) as current:
            common = self._common(model)
            if current.is_recording():
                current.set_attributes(_request(common, tier, request.max_tokens))
            started = time.perf_counter()
            try:
                response = await call_next(request)
            except LLMError as error:
                self._failed(common, model, tier, error, time.perf_counter() - started)
                raise
            self._answered(current, common, tier, response, time.perf_counter() - started)
        return response

    def model_for(self, tier: ModelTier) -> str:
        """The model ``tier``'s calls ask for, if the model underneath says; else the tier."""
        return self._names.model_for(tier) if self._names is not None else tier.value

    def _common(self, model: str) -> dict[str, AttributeValue]:
        """What the span and both histograms carry: operation, provider, model, server."""
        common: dict[str, AttributeValue] = {
            gen_ai.OPERATION: "chat",
            gen_ai.PROVIDER_NAME: gen_ai.PROVIDER,
            gen_ai.REQUEST_MODEL: model,
            **self._server,
        }
        return common

    def _answered(
        self,
        current: Span,
        common: dict[str, AttributeValue],
        tier: ModelTier,
        response: LLMResponse,
        seconds: float,
    ) -> None:
        if current.is_recording():
            current.set_attributes(_response(response))
        _metrics.llm_answered(tier, response)
        _metrics.model_called(str(common[gen_ai.REQUEST_MODEL]), "ok", seconds)
        if _metrics.enabled():
            answered = {**common, gen_ai.RESPONSE_MODEL: text(response.model)}
            recorder = instruments()
            recorder.duration.record(seconds, answered)
            output = response.usage.output_tokens
            recorder.tokens.record(
                _inputs(response.usage), {**answered, gen_ai.TOKEN_TYPE: "input"}
            )
            recorder.tokens.record(output, {**answered, gen_ai.TOKEN_TYPE: "output"})

    def _failed(
        self,
        common: dict[str, AttributeValue],
        model: str,
        tier: ModelTier,
        error: LLMError,
        seconds: float,
    ) -> None:
        code = error_type(error)
        _metrics.llm_failed(model, tier)
        _metrics.model_called(model, _OUTCOMES.get(code, "error"), seconds)
        if _metrics.enabled():
            instruments().duration.record(seconds, {**common, gen_ai.ERROR_TYPE: code})


def _request(
    common: dict[str, AttributeValue], tier: ModelTier, max_tokens: int | None
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {**common, "airlock.llm.tier": tier.value}
    if max_tokens is not None:  # else the model client's configured default, unknown here
        attributes["gen_ai.request.max_tokens"] = max_tokens
    conversation = current_conversation()
    if conversation is not None:
        attributes[gen_ai.CONVERSATION] = conversation
    return attributes


def _response(response: LLMResponse) -> dict[str, AttributeValue]:
    usage = response.usage
    attributes: dict[str, AttributeValue] = {
        # What the API (or a gateway in front of it) answered is text from outside: redacted.
        gen_ai.RESPONSE_MODEL: text(response.model),
        "gen_ai.response.finish_reasons": (response.stop_reason,),
        gen_ai.INPUT_TOKENS: _inputs(usage),
        gen_ai.OUTPUT_TOKENS: usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
        "airlock.cost_usd": usage.cost_usd,
    }
    if response.id is not None:
        attributes["gen_ai.response.id"] = text(response.id)
    return attributes


def _inputs(usage: Usage) -> int:
    """Input tokens as the conventions count them: cache reads and writes included."""
    return usage.input_tokens + usage.cache_write_tokens + usage.cache_read_tokens
