"""Budgets as a wrapper around the LLM: every call is counted, priced and checked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agent_core.llm import LLM, LLMResponse, ModelTier, Usage, count_through
from agent_core.models import Spend
from agent_core.stops import BudgetExceeded

__all__ = ["BudgetLimits", "BudgetedLLM"]

BudgetName = Literal["llm_calls", "tokens", "usd"]


@dataclass(kw_only=True, frozen=True)
class BudgetLimits:
    """The most one run may use."""

    llm_calls: int
    """Model calls."""
    tokens: int
    """Tokens of every kind."""
    usd: float
    """Dollars."""
    warning_fraction: float = 0.5
    """Share of a budget at which people are warned once."""


@dataclass(kw_only=True)
class BudgetedLLM:
    """An :class:`LLM` that adds each call to ``spend`` and stops the run at a limit.

    Before a call, a spent budget raises :class:`BudgetExceeded`; after a call, one that
    crossed its limit does too, so the hard stop happens at 100 % and never later than
    the call that crossed it.
    """

    llm: LLM
    """The model underneath."""
    limits: BudgetLimits
    """The run's limits."""
    spend: Spend = field(default_factory=Spend)
    """What the run used so far; updated in place after every call."""
    on_spend: Callable[[Spend], Awaitable[None]] | None = None
    """Called after every call with the new totals (to persist them)."""
    on_usage: Callable[[Usage], Awaitable[None]] | None = None
    """Called after every call with that call's usage (to count it in shared budgets)."""
    on_warning: Callable[[BudgetName, float, float], Awaitable[None]] | None = None
    """Called once per budget when it passes the warning fraction."""
    baseline: Spend | None = None
    """Spend that does not count against the limits (earlier attempts of a retried run)."""
    warned: set[str] = field(default_factory=set)
    """Budgets already warned about."""

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
        self._check()
        response = await self.llm.complete(
            tier=tier,
            system=system,
            messages=messages,
            tools=tools,
            tool_choice=tool_choice,
            max_tokens=max_tokens,
        )
        self._add(response.usage)
        if self.on_usage is not None:
            await self.on_usage(response.usage)
        if self.on_spend is not None:
            await self.on_spend(self.spend)
        await self._warn()
        self._check(after_call=True)
        return response

    async def count_tokens(
        self,
        *,
        tier: ModelTier,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
    ) -> int:
        """The model's own count, uncharged (``count_tokens`` is free and is not a model turn).

        Raises :class:`LLMError` when the model underneath cannot count.
        """
        return await count_through(
            self.llm, tier=tier, system=system, messages=messages, tools=tools
        )

    def _add(self, usage: Usage) -> None:
        s = self.spend
        s.llm_calls += 1
        s.input_tokens += usage.input_tokens
        s.output_tokens += usage.output_tokens
        s.cache_write_tokens += usage.cache_write_tokens
        s.cache_read_tokens += usage.cache_read_tokens
        s.cost_usd += usage.cost_usd

    def _usage(self) -> list[tuple[BudgetName, float, float]]:
        s, b = self.spend, self.baseline or Spend()
        tokens = s.input_tokens + s.output_tokens + s.cache_write_tokens + s.cache_read_tokens
        before = b.input_tokens + b.output_tokens + b.cache_write_tokens + b.cache_read_tokens
        return [
            ("llm_calls", s.llm_calls - b.llm_calls, self.limits.llm_calls),
            ("tokens", tokens - before, self.limits.tokens),
            ("usd", s.cost_usd - b.cost_usd, self.limits.usd),
        ]

    def _check(self, *, after_call: bool = False) -> None:
        for name, used, limit in self._usage():
            # Reaching the call limit is fine after the last allowed call, not before one more.
            spent = used > limit if (after_call and name == "llm_calls") else used >= limit
            if spent:
                raise BudgetExceeded(name, used, limit)

    async def _warn(self) -> None:
        for name, used, limit in self._usage():
            if name not in self.warned and used >= limit * self.limits.warning_fraction:
                self.warned.add(name)
                if self.on_warning is not None:
                    await self.on_warning(name, used, limit)
