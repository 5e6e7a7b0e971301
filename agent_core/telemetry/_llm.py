"""Model calls as spans and metrics: a wrapper around the run's LLM."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from agent_core.errors import LLMError
from agent_core.llm import LLM, LLMResponse, ModelTier, NamesModels, count_through
from agent_core.telemetry import _metrics
from agent_core.telemetry._spans import span

GEN_AI_SYSTEM = "anthropic"
"""Every model call goes to the Anthropic Messages API, or to a server that speaks it."""


@dataclass(kw_only=True)
class ObservedLLM:
    """An :class:`~agent_core.llm.LLM` whose every call is a ``chat`` span and is counted.

    The span follows the GenAI semantic conventions: ``gen_ai.usage.input_tokens`` counts every
    input token, cached ones included, and cache reads and writes have attributes of their
    own. When tracing is on, the anthropic SDK's span of the HTTP call is its child.
    """

    llm: LLM
    _names: NamesModels | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        # Asked once: a runtime Protocol check on every call would cost more than the span.
        self._names = self.llm if isinstance(self.llm, NamesModels) else None

    async def complete(
        self,
        *,
        tier: ModelTier,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: dict[str, Any] | None = None,
        max_tokens: int = 4096,
    ) -> LLMResponse:
        model = self.model_for(tier)
        with span(f"chat {model}", SpanKind.CLIENT) as current:
            if current.is_recording():
                current.set_attributes(_request(model, tier, max_tokens))
            try:
                response = await self.llm.complete(
                    tier=tier,
                    system=system,
                    messages=messages,
                    tools=tools,
                    tool_choice=tool_choice,
                    max_tokens=max_tokens,
                )
            except LLMError:
                _metrics.llm_failed(model, tier)
                raise
            if current.is_recording():
                current.set_attributes(_response(response))
        _metrics.llm_answered(tier, response)
        return response

    async def count_tokens(
        self,
        *,
        tier: ModelTier,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
    ) -> int:
        """The model's own count: free and not a model turn, so neither a span nor counted."""
        return await count_through(
            self.llm, tier=tier, system=system, messages=messages, tools=tools
        )

    def model_for(self, tier: ModelTier) -> str:
        """The model ``tier``'s calls ask for, if the model underneath says; else the tier."""
        return self._names.model_for(tier) if self._names is not None else tier.value


def _request(model: str, tier: ModelTier, max_tokens: int) -> dict[str, AttributeValue]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": GEN_AI_SYSTEM,
        "gen_ai.provider.name": GEN_AI_SYSTEM,
        "gen_ai.request.model": model,
        "gen_ai.request.max_tokens": max_tokens,
        "airlock.llm.tier": tier.value,
    }


def _response(response: LLMResponse) -> dict[str, AttributeValue]:
    usage = response.usage
    return {
        "gen_ai.response.model": response.model,
        "gen_ai.response.finish_reasons": (response.stop_reason,),
        "gen_ai.usage.input_tokens": usage.input_tokens
        + usage.cache_write_tokens
        + usage.cache_read_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
        "airlock.cost_usd": usage.cost_usd,
    }
