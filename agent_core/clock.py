"""Time as a dependency, so expiry and TTLs are testable without waiting."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "utcnow"]


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Clock(Protocol):
    """Something that tells the time (UTC, timezone-aware)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return utcnow()


@dataclass(kw_only=True)
class ManualClock:
    """A clock that only moves when told to; for tests."""

    current: datetime = field(default_factory=utcnow)
    """The time :meth:`now` returns."""

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.current += timedelta(seconds=seconds)
