"""Limits on starting runs: daily budgets for the workspace and per person, runs per hour.

Spend is counted as it happens, one model call at a time, into two running totals per UTC
day kept in the store (the workspace's and the requester's), so a budget check reads two
numbers instead of adding up every run, and every process sees the same totals. Whether a
new run may start is decided in one place, :class:`Admission`, which every entry that
starts runs calls (Slack goals, ``airlock run``). A run already working is not stopped by
these: its own budget bounds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal, assert_never

from agent_core.approvals import LOCAL_PREFIX
from agent_core.audit import events
from agent_core.audit.trail import GLOBAL, Audit
from agent_core.clock import Clock, SystemClock
from agent_core.config import Settings
from agent_core.store import SharedValues, Store

__all__ = ["Admission", "LimitName", "LimitReached", "Limits", "SpendLedger"]

LimitName = Literal["daily_budget", "user_daily_budget", "runs_per_hour"]

_HOUR = 3600.0
_KEEP_TOTALS_SECONDS = 2 * 86_400.0
"""A day's totals are read during that day; keeping them a day longer costs little."""


@dataclass(kw_only=True, frozen=True)
class Limits:
    """Limits on new runs; 0 turns a limit off."""

    daily_usd: float = 0.0
    """Dollars the whole workspace may spend per UTC day."""
    user_daily_usd: float = 0.0
    """Dollars one person's runs may spend per UTC day."""
    runs_per_user_per_hour: int = 0
    """Runs one person may start per clock hour (UTC)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits the settings describe."""
        return cls(
            daily_usd=settings.daily_budget_usd,
            user_daily_usd=settings.user_daily_budget_usd,
            runs_per_user_per_hour=settings.runs_per_user_per_hour,
        )


@dataclass(kw_only=True)
class SpendLedger:
    """Dollars spent per UTC day, for the whole workspace and for each person."""

    store: SharedValues
    clock: Clock = field(default_factory=SystemClock)

    async def charge(self, requester: str, usd: float) -> None:
        """Count ``usd``, spent now on a run of ``requester``, in today's totals."""
        if usd > 0:
            day = self.clock.now().date()
            keys = [_workspace_key(day), _person_key(requester, day)]
            await self.store.add_spend(keys, usd, ttl_seconds=_KEEP_TOTALS_SECONDS)

    async def today(self, requester: str | None = None) -> float:
        """Dollars spent today by the workspace, or by ``requester``'s runs."""
        day = self.clock.now().date()
        key = _workspace_key(day) if requester is None else _person_key(requester, day)
        return await self.store.get_spend(key)


@dataclass(kw_only=True, frozen=True)
class LimitReached:
    """A new run is refused: ``limit`` is used up (``used`` of ``allowed``) until ``resets_at``."""

    limit: LimitName
    used: float
    allowed: float
    resets_at: datetime

    def describe(self, now: datetime) -> str:
        """The refusal for people, saying which limit, how much, and when it resets."""
        if self.limit == "daily_budget":
            what = f"Daily budget for the workspace is spent ({self._dollars()})"
        elif self.limit == "user_daily_budget":
            what = f"Your daily budget is spent ({self._dollars()})"
        elif self.limit == "runs_per_hour":
            what = f"You have started {self.used:g} of {self.allowed:g} runs allowed per hour"
        else:
            assert_never(self.limit)
        at = self.resets_at.astimezone(UTC).strftime("%H:%M")
        return f"{what}; it resets at {at} UTC, in {_duration(self.resets_at - now)}."

    def _dollars(self) -> str:
        return f"${self.used:.2f} of ${self.allowed:.2f}"


@dataclass(kw_only=True)
class Admission:
    """Admits a new run or names the limit that refuses it; each refusal is audited.

    People at this machine's shell (``local:`` identities) are held to the workspace budget
    only: like admins, they hold the store and the keys, and the per-person limits exist to
    share the workspace's budget fairly among Slack users.
    """

    store: Store
    limits: Limits
    clock: Clock = field(default_factory=SystemClock)

    async def admit(self, requester: str) -> LimitReached | None:
        """None when ``requester`` may start a run now (counted as one of this hour's)."""
        now = self.clock.now()
        reached = await self._budgets(requester, now) or await self._hourly(requester, now)
        if reached is not None:
            refused = events.RunRefused(
                limit=reached.limit, used=reached.used, allowed=reached.allowed
            )
            await Audit(store=self.store).record(GLOBAL, refused, actor=requester)
        return reached

    async def _budgets(self, requester: str, now: datetime) -> LimitReached | None:
        ledger = SpendLedger(store=self.store, clock=self.clock)
        checks: list[tuple[LimitName, float, str | None]] = [
            ("daily_budget", self.limits.daily_usd, None)
        ]
        if not requester.startswith(LOCAL_PREFIX):
            checks.append(("user_daily_budget", self.limits.user_daily_usd, requester))
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        for limit, allowed, whose in checks:
            if allowed > 0 and (used := await ledger.today(whose)) >= allowed:
                return LimitReached(limit=limit, used=used, allowed=allowed, resets_at=midnight)
        return None

    async def _hourly(self, requester: str, now: datetime) -> LimitReached | None:
        allowed = self.limits.runs_per_user_per_hour
        if allowed == 0 or requester.startswith(LOCAL_PREFIX):
            return None
        # The store counts in fixed windows aligned to the epoch: clock hours, in UTC.
        hits = await self.store.hit_rate_limit(f"runs-per-hour:{requester}", window_seconds=_HOUR)
        if hits <= allowed:
            return None
        next_hour = (math.floor(now.timestamp() / _HOUR) + 1) * _HOUR
        resets_at = datetime.fromtimestamp(next_hour, UTC)
        return LimitReached(
            limit="runs_per_hour", used=allowed, allowed=allowed, resets_at=resets_at
        )


def _workspace_key(day: date) -> str:
    return f"workspace:{day.isoformat()}"


def _person_key(requester: str, day: date) -> str:
    return f"person:{requester}:{day.isoformat()}"


def _duration(left: timedelta) -> str:
    minutes = max(1, math.ceil(left.total_seconds() / 60))
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
