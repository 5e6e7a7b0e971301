"""Cached context goes stale on a schedule: a changed approver group counts within its TTL."""

from __future__ import annotations

from agent_core.approvals import Authority
from agent_core.clock import ManualClock
from agent_core.models import Approval, RiskLevel, ToolCallSubject


async def test_a_changed_approver_group_takes_effect_within_the_cache_ttl() -> None:
    members = {"S0ONCALL": {"U0ANA"}}
    lookups: list[str] = []

    async def members_of(group: str) -> set[str]:
        lookups.append(group)
        return set(members[group])

    clock = ManualClock()
    authority = Authority(approvers=["S0ONCALL"], members_of=members_of, cache_seconds=300,
                          clock=clock)  # fmt: skip
    subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={})
    approval = Approval(run_id="run_a", subject=subject, risk=RiskLevel.HIGH, requester="U0REQ")
    assert await authority.refusal(approval, "U0ANA") is None
    assert await authority.refusal(approval, "U0BOB") is not None

    members["S0ONCALL"] = {"U0BOB"}  # the on-call rotation changed in Slack
    clock.advance(299)
    assert await authority.refusal(approval, "U0ANA") is None  # cached: at most 300 s stale
    clock.advance(2)
    assert await authority.refusal(approval, "U0ANA") is not None
    assert await authority.refusal(approval, "U0BOB") is None
    assert lookups == ["S0ONCALL", "S0ONCALL"]
