"""The risk gate: the one place that decides whether a tool call or a plan may go ahead.

LOW runs; MEDIUM tells the channel and runs; HIGH and CRITICAL persist an approval bound to
the exact call, ask the channel, record the decision atomically in the store and consume the
approval once. The policy is code: nothing a model or a tool says reaches it except the
arguments, which the approval's digest binds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, TypeAlias

from agent_core.channel import ApprovalNeeded, OperatorChannel, ToolNotice
from agent_core.clock import Clock, SystemClock
from agent_core.models import (
    AlreadyDecided,
    Approval,
    ApprovalStatus,
    Concluded,
    Counted,
    Duplicate,
    Plan,
    PlanSubject,
    RiskLevel,
    Run,
    Subject,
    ToolCallSubject,
)
from agent_core.store import Store

__all__ = ["Allowed", "ChannelGate", "Denied", "Gate", "Verdict"]


@dataclass(kw_only=True, frozen=True)
class Allowed:
    """Go ahead, with these arguments (an approver may have edited them)."""

    arguments: dict[str, Any]
    approval_id: str | None = None


@dataclass(kw_only=True, frozen=True)
class Denied:
    """Do not run; ``reason`` goes back to the model as the tool result."""

    reason: str


Verdict: TypeAlias = Allowed | Denied


class Gate(Protocol):
    """Decides whether a tool call or a plan may go ahead."""

    async def check_tool_call(
        self,
        *,
        run: Run,
        subtask_id: str,
        tool: str,
        arguments: dict[str, Any],
        risk: RiskLevel,
        tool_use_id: str | None = None,
        preview: str | None = None,
    ) -> Verdict: ...

    async def check_plan(self, *, run: Run, plan: Plan) -> Verdict: ...


@dataclass(kw_only=True)
class ChannelGate:
    """The gate that asks the run's operator channel and keeps every approval in the store."""

    store: Store
    channel: OperatorChannel
    quorum: int = 2
    """Distinct approvers a CRITICAL call needs (an admin decision settles it alone)."""
    ttl_seconds: float = 3600.0
    """Deadline of an approval request."""
    clock: Clock = field(default_factory=SystemClock)
    """Time source for deadlines."""
    on_wait: Callable[[bool], Awaitable[None]] | None = None
    """Told True when the run starts waiting for a person and False when it stops."""

    async def check_tool_call(
        self,
        *,
        run: Run,
        subtask_id: str,
        tool: str,
        arguments: dict[str, Any],
        risk: RiskLevel,
        tool_use_id: str | None = None,
        preview: str | None = None,
    ) -> Verdict:
        if risk is RiskLevel.LOW:
            return Allowed(arguments=arguments)
        if risk is RiskLevel.MEDIUM:
            await self.channel.notify(
                ToolNotice(run=run, tool=tool, arguments=arguments, risk=risk)
            )
            return Allowed(arguments=arguments)
        subject = ToolCallSubject(
            subtask_id=subtask_id,
            tool=tool,
            arguments=arguments,
            tool_use_id=tool_use_id,
            preview=preview,
        )
        return await self._ask(run, subject, risk)

    async def check_plan(self, *, run: Run, plan: Plan) -> Verdict:
        if plan.risk.rank < RiskLevel.HIGH.rank:
            return Allowed(arguments={})
        return await self._ask(run, PlanSubject(plan=plan), plan.risk)

    async def _ask(self, run: Run, subject: Subject, risk: RiskLevel) -> Verdict:
        approval = Approval(
            run_id=run.id,
            subject=subject,
            risk=risk,
            requester=run.requester,
            deadline=self.clock.now() + timedelta(seconds=self.ttl_seconds),
            required_approvals=self.quorum if risk is RiskLevel.CRITICAL else 1,
        )
        await self.store.create_approval(approval)  # persisted before anyone is asked
        await self.channel.notify(ApprovalNeeded(run=run, approval=approval))
        if self.on_wait is not None:
            await self.on_wait(True)
        try:
            settled = await self._until_settled(approval)
        finally:
            if self.on_wait is not None:
                await self.on_wait(False)
        return await self._verdict(settled)

    async def _until_settled(self, approval: Approval) -> Approval:
        while True:
            decision = await self.channel.request_decision(approval)
            outcome = await self.store.record_decision(approval.id, decision)
            if isinstance(outcome, Concluded | AlreadyDecided):
                return outcome.approval
            if isinstance(outcome, Counted | Duplicate):
                approval = outcome.approval

    async def _verdict(self, approval: Approval) -> Verdict:
        if approval.status is not ApprovalStatus.APPROVED:
            last = approval.decisions[-1] if approval.decisions else None
            why = f": {last.reason}" if last is not None and last.reason else ""
            return Denied(reason=f"{approval.status} by {approval.decided_by}{why}")
        used = await self.store.consume_approval(
            approval.id, digest=approval.digest, at=self.clock.now()
        )
        subject = used.subject
        arguments = subject.arguments if isinstance(subject, ToolCallSubject) else {}
        return Allowed(arguments=arguments, approval_id=used.id)
