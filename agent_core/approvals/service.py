"""Deciding an approval: the one path every button, text command and CLI call goes through.

It checks who is deciding, validates edited arguments, records the decision atomically
(first conclusive decision wins, in every process), tells every process, and audits it,
refusals included.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from agent_core import telemetry
from agent_core.approvals.authority import Authority
from agent_core.approvals.risk import RiskPolicy
from agent_core.audit import events
from agent_core.audit.trail import Audit
from agent_core.errors import NotFound
from agent_core.models import (
    Approval,
    ApprovalDecided,
    ApprovalStatus,
    Concluded,
    Decision,
    DecisionKind,
    DecisionOutcome,
    RiskLevel,
    ToolCallSubject,
)
from agent_core.store import Store
from agent_core.tools import ToolRegistry

__all__ = [
    "GRANTS",
    "DecisionService",
    "EditRisk",
    "Refused",
    "edit_risk_check",
    "grant_value",
    "schema_edit_check",
]

GRANTS = "grants:"
"""Session-fact scope prefix for approve-for-this-run grants: tool -> JSON of the risk
granted, who granted it and on which approval (see :func:`grant_value`)."""

EditCheck = Callable[[Approval, dict[str, Any]], str | None]
EditRisk = Callable[[Approval, dict[str, Any]], Awaitable[RiskLevel]]
"""The risk of an approval's call with edited arguments."""


def grant_value(approval: Approval, by: str) -> str:
    """What a grant records: the risk it covers, who gave it, and on which request."""
    return json.dumps({"risk": approval.risk.value, "by": by, "approval": approval.id})


def schema_edit_check(tools: ToolRegistry) -> EditCheck:
    """Edited arguments must satisfy the tool's JSON Schema, as the model's would."""

    def check(approval: Approval, arguments: dict[str, Any]) -> str | None:
        subject = approval.subject
        tool = tools.get(subject.tool) if isinstance(subject, ToolCallSubject) else None
        if tool is None:
            return "the tool of this request is no longer available"
        errors = sorted(Draft202012Validator(tool.input_schema).iter_errors(arguments), key=str)
        if not errors:
            return None
        where = "/".join(str(p) for p in errors[0].absolute_path) or "arguments"
        return f"the edited arguments are invalid at {where}: {errors[0].message}"

    return check


def edit_risk_check(tools: ToolRegistry, risk: RiskPolicy, store: Store) -> EditRisk:
    """Edited arguments go through the very risk computation the model's call went through:
    the tool's base risk, the configured overrides, what the arguments imply, secrets, and
    egress given what the run has read. Anything unknown counts as the worst case."""

    async def assess(approval: Approval, arguments: dict[str, Any]) -> RiskLevel:
        subject = approval.subject
        tool = tools.get(subject.tool) if isinstance(subject, ToolCallSubject) else None
        if tool is None:
            return RiskLevel.CRITICAL
        try:
            private = (await store.get_run(approval.run_id)).private_data_read
        except NotFound:
            private = True
        return risk.assess(tool, arguments, private_data_read=private).level

    return assess


@dataclass(kw_only=True, frozen=True)
class Refused:
    """The decision was not accepted and changed nothing; ``reason`` is for the person."""

    reason: str


@dataclass(kw_only=True)
class DecisionService:
    """Records decisions on approvals, for any front end."""

    store: Store
    authority: Authority
    audit: Audit
    check_edit: EditCheck | None = None
    """Validates edited arguments against the tool's schema; returns the problem, if any."""
    edit_risk: EditRisk | None = None
    """Works out the risk of edited arguments; without it an edit counts as CRITICAL."""
    grant_ttl_seconds: float = 86_400.0
    """How long an approve-for-this-run grant lasts at most."""

    async def decide(self, approval_id: str, decision: Decision) -> DecisionOutcome | Refused:
        """Apply ``decision`` if its author may; the outcome says what it achieved."""
        try:
            approval = await self.store.get_approval(approval_id)
        except NotFound:
            return Refused(reason=f"there is no approval {approval_id}")
        refusal = await self._refusal(approval, decision)
        if refusal is not None:
            refused = events.DecisionRefused(
                approval_id=approval.id, decision=decision.kind, reason=refusal
            )
            await self.audit.record(approval.run_id, refused, actor=decision.by)
            return Refused(reason=refusal)
        # Admin authority and an edit's risk are ours to establish; claims are ignored.
        decision = decision.model_copy(
            update={
                "as_admin": await self.authority.is_admin(decision.by),
                "edited_risk": await self._edited_risk(approval, decision),
            }
        )
        outcome = await self.store.record_decision(approval.id, decision)
        await self._after(approval, decision, outcome)
        return outcome

    async def _refusal(self, approval: Approval, decision: Decision) -> str | None:
        reason = await self.authority.refusal(approval, decision.by)
        if reason is not None:
            return reason
        if decision.kind is DecisionKind.APPROVE_FOR_RUN:
            return _grant_refusal(approval)
        if decision.kind is DecisionKind.EDIT:
            return self._edit_problem(approval, decision)
        return None

    async def _edited_risk(self, approval: Approval, decision: Decision) -> RiskLevel | None:
        if decision.kind is not DecisionKind.EDIT or decision.edited_arguments is None:
            return None
        if self.edit_risk is None:
            return RiskLevel.CRITICAL
        return await self.edit_risk(approval, decision.edited_arguments)

    def _edit_problem(self, approval: Approval, decision: Decision) -> str | None:
        if not isinstance(approval.subject, ToolCallSubject):
            return "only a tool call's arguments can be edited"
        if self.check_edit is None or decision.edited_arguments is None:
            return None
        return self.check_edit(approval, decision.edited_arguments)

    async def _after(
        self, approval: Approval, decision: Decision, outcome: DecisionOutcome
    ) -> None:
        if isinstance(outcome, Concluded):
            telemetry.approval_settled(outcome.approval)
            subject = outcome.approval.subject
            if decision.kind is DecisionKind.APPROVE_FOR_RUN and isinstance(
                subject, ToolCallSubject
            ):
                await self.store.set_fact(
                    GRANTS + approval.run_id, subject.tool, grant_value(approval, decision.by),
                    ttl_seconds=self.grant_ttl_seconds,
                )  # fmt: skip
            if outcome.approval.status is ApprovalStatus.SUPERSEDED:
                superseded = events.ApprovalSuperseded(
                    approval_id=approval.id, risk=approval.risk,
                    edited_risk=str(decision.edited_risk),
                    edited_arguments=decision.edited_arguments,
                )  # fmt: skip
                await self.audit.record(approval.run_id, superseded, actor=decision.by)
        decided = events.ApprovalDecided(
            approval_id=approval.id, decision=decision.kind, outcome=outcome.kind,
            reason=decision.reason, edited_arguments=decision.edited_arguments,
            status=outcome.approval.status,
        )  # fmt: skip
        audited = self.audit.record(approval.run_id, decided, actor=decision.by)
        if not isinstance(outcome, Concluded):
            await audited
            return
        # The run wakes here at once (a store delivers its own signals before writing them);
        # the signal's write and the audit line go out together, so a store that commits in
        # groups makes them one durable write, not two standing in front of the resumed run.
        # Both are durable before this returns, as before.
        signal = ApprovalDecided.of(outcome.approval)
        await asyncio.gather(self.store.publish(signal), audited)


def _grant_refusal(approval: Approval) -> str | None:
    """Why approve-for-this-run may not be given on ``approval``; None when it may."""
    subject = approval.subject
    if not isinstance(subject, ToolCallSubject):
        return "approve-for-this-run is only for tool calls"
    if approval.risk is RiskLevel.CRITICAL:
        return "approve-for-this-run is not offered for CRITICAL actions"
    if not approval.grantable:
        return (
            f"approve-for-this-run is not offered for this {subject.tool} call: later calls"
            " of it could do what nobody has seen; approve this one alone"
        )
    return None
