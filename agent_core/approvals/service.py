"""Deciding an approval: the one path every button, text command and CLI call goes through.

It checks who is deciding, validates edited arguments, records the decision atomically
(first conclusive decision wins, in every process), tells every process, and audits it,
refusals included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from agent_core import telemetry
from agent_core.approvals.authority import Authority
from agent_core.audit import Audit
from agent_core.errors import NotFound
from agent_core.models import (
    Approval,
    ApprovalDecided,
    Concluded,
    Decision,
    DecisionKind,
    DecisionOutcome,
    RiskLevel,
    ToolCallSubject,
)
from agent_core.store import Store
from agent_core.tools import ToolRegistry

__all__ = ["GRANTS", "DecisionService", "Refused", "schema_edit_check"]

GRANTS = "grants:"
"""Session-fact scope prefix for approve-for-this-run grants: tool -> highest risk granted."""

EditCheck = Callable[[Approval, dict[str, Any]], str | None]


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
            await self.audit.record(
                approval.run_id, "decision_refused", actor=decision.by,
                approval_id=approval.id, decision=decision.kind.value, reason=refusal,
            )  # fmt: skip
            return Refused(reason=refusal)
        # Admin authority is ours to establish; whatever the caller claimed is ignored.
        decision = decision.model_copy(
            update={"as_admin": await self.authority.is_admin(decision.by)}
        )
        outcome = await self.store.record_decision(approval.id, decision)
        await self._after(approval, decision, outcome)
        return outcome

    async def _refusal(self, approval: Approval, decision: Decision) -> str | None:
        reason = await self.authority.refusal(approval, decision.by)
        if reason is not None:
            return reason
        if decision.kind is DecisionKind.APPROVE_FOR_RUN and approval.risk is RiskLevel.CRITICAL:
            return "approve-for-this-run is not offered for CRITICAL actions"
        if decision.kind is DecisionKind.EDIT:
            return self._edit_problem(approval, decision)
        return None

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
                    GRANTS + approval.run_id, subject.tool, approval.risk.value,
                    ttl_seconds=self.grant_ttl_seconds,
                )  # fmt: skip
            # Wake the run first: the audit line can follow a moment later.
            await self.store.publish(
                ApprovalDecided(approval_id=approval.id, run_id=approval.run_id)
            )
        await self.audit.record(
            approval.run_id, "approval_decided", actor=decision.by, approval_id=approval.id,
            decision=decision.kind.value, outcome=outcome.kind, reason=decision.reason,
            edited_arguments=decision.edited_arguments, status=outcome.approval.status.value,
        )  # fmt: skip
