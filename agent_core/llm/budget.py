"""Budgets as a middleware around the LLM: every call is counted, priced and checked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from agent_core.llm import LLMRequest, LLMResponse, Next, Usage
from agent_core.models import Spend
from agent_core.stops import BudgetExceeded

__all__ = ["Budget", "BudgetLimits"]

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
class Budget:
    """A middleware (:mod:`agent_core.llm.stack`) that adds each call to ``spend`` and stops
    the run at a limit.

    Before a call, a spent budget raises :class:`BudgetExceeded`; after a call, one that
    crossed its limit does too, so the hard stop happens at 100 % and never later than
    the call that crossed it. Counting tokens is free and is not charged (a stack sends it
    past its middleware).
    """

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

    async def __call__(self, request: LLMRequest, call_next: Next) -> LLMResponse:
        """The call, if no budget is spent; :class:`BudgetExceeded` before or after it."""
        self._check()
        response = await call_next(request)
        self._add(response.usage)
        if self.on_usage is not None:
            await self.on_usage(response.usage)
        if self.on_spend is not None:
            await self.on_spend(self.spend)
        await self._warn()
        self._check(after_call=True)
        return response

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
