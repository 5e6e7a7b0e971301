"""The approval policy: how many approvals a risk needs, and what a missed deadline does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent_core.config import Settings
from agent_core.models import RiskLevel, TimeoutPolicy

__all__ = ["ApprovalPolicy"]


@dataclass(kw_only=True, frozen=True)
class ApprovalPolicy:
    """Quorum, deadlines and timeout behaviour per risk. Code and settings, never a prompt."""

    quorum: int = 2
    """Distinct approvers a CRITICAL action needs (one admin decision settles it alone)."""
    ttl_seconds: float = 3600.0
    """Time to decide, from the request."""
    on_timeout: dict[RiskLevel, TimeoutPolicy] = field(
        default_factory=lambda: {
            RiskLevel.HIGH: TimeoutPolicy.REJECT,
            RiskLevel.CRITICAL: TimeoutPolicy.HALT,
        }
    )
    """What a missed deadline does, per risk."""
    escalation: list[tuple[str, float]] = field(default_factory=list)
    """The escalation chain: (user or group id, seconds that hop waits)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ApprovalPolicy:
        """The policy the settings describe."""
        return cls(
            quorum=settings.approval_quorum,
            ttl_seconds=settings.approval_ttl_seconds,
            on_timeout={
                RiskLevel.HIGH: settings.approval_timeout_high,
                RiskLevel.CRITICAL: settings.approval_timeout_critical,
            },
            escalation=settings.escalation_hops,
        )

    def required(self, risk: RiskLevel) -> int:
        """Approvals needed at ``risk``."""
        return self.quorum if risk is RiskLevel.CRITICAL else 1

    def timeout(self, risk: RiskLevel) -> TimeoutPolicy:
        """What happens at the deadline of an approval at ``risk``."""
        return self.on_timeout.get(risk, TimeoutPolicy.REJECT)

    def deadline(self, now: datetime) -> datetime:
        """The deadline of a request made at ``now``."""
        return now + timedelta(seconds=self.ttl_seconds)
