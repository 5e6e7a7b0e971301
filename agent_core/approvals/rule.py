"""How one human decision changes an approval request.

A pure function, so both Store backends apply exactly the same rule inside
their own atomic section (a SQLite write transaction, a Redis WATCH/MULTI),
and the rule is unit-testable on its own.

Rules:
- Recording the same decision again (a retried write, a redelivered click) changes nothing and
  reports what it achieved the first time.
- Once an approval is no longer pending, nothing changes it: the caller is
  told who decided (first conclusive decision wins).
- A reject concludes at once.
- An approve (or approve-for-run) counts once per person for the arguments
  currently proposed; it concludes when the number of distinct approvers
  reaches ``required_approvals``, or at once when given with admin authority.
- An edit replaces the arguments, which gives the approval a new digest, and
  counts as the editor's approve of the new arguments; approves given for
  the old arguments no longer count.
- An edit that makes the call riskier than the request (its ``edited_risk``, worked
  out by the decision path, is above the approval's risk) approves nothing: it
  concludes the request as superseded, and the gate asks for the edited call anew,
  at its own risk and quorum.
"""

from __future__ import annotations

from agent_core.errors import InvalidDecision
from agent_core.models import (
    AlreadyDecided,
    Approval,
    ApprovalStatus,
    Concluded,
    Counted,
    Decision,
    DecisionKind,
    DecisionOutcome,
    Duplicate,
    ToolCallSubject,
)

__all__ = ["apply_decision", "approvers_of_current_arguments"]

_APPROVING = frozenset({DecisionKind.APPROVE, DecisionKind.APPROVE_FOR_RUN, DecisionKind.EDIT})


def approvers_of_current_arguments(approval: Approval) -> set[str]:
    """Distinct people whose approve counts for the arguments now proposed."""
    voters: set[str] = set()
    for decision in approval.decisions:
        if decision.kind is DecisionKind.EDIT:
            voters = {decision.by}
        elif decision.kind in _APPROVING:
            voters.add(decision.by)
    return voters


def apply_decision(approval: Approval, decision: Decision) -> tuple[Approval, DecisionOutcome]:
    """The approval after ``decision``, and what the decision achieved.

    ``approval`` is not modified; when the outcome is :class:`AlreadyDecided`
    or :class:`Duplicate` the returned approval is the same object.
    """
    if decision in approval.decisions:
        return approval, _replayed(approval, decision)
    if approval.status is not ApprovalStatus.PENDING:
        return approval, AlreadyDecided(approval=approval)
    if decision.kind is DecisionKind.REJECT:
        return _conclude(approval, decision, ApprovalStatus.REJECTED)
    if decision.kind is DecisionKind.EDIT:
        approval = _with_edited_arguments(approval, decision)
        if decision.edited_risk is not None and decision.edited_risk.rank > approval.risk.rank:
            return _conclude(approval, decision, ApprovalStatus.SUPERSEDED)
    elif decision.by in approvers_of_current_arguments(approval):
        return approval, Duplicate(approval=approval)
    updated = approval.model_copy(update={"decisions": [*approval.decisions, decision]})
    approvers = approvers_of_current_arguments(updated)
    if decision.as_admin or len(approvers) >= approval.required_approvals:
        return _conclude(approval, decision, ApprovalStatus.APPROVED)
    needed = approval.required_approvals - len(approvers)
    return updated, Counted(approval=updated, approvals_needed=needed)


def _replayed(approval: Approval, decision: Decision) -> DecisionOutcome:
    """The outcome of recording ``decision`` again: what it achieved the first time."""
    settled = approval.status is not ApprovalStatus.PENDING
    if settled and (approval.decided_by, approval.decided_at) == (decision.by, decision.at):
        return Concluded(approval=approval)
    return Duplicate(approval=approval)


def _conclude(
    approval: Approval, decision: Decision, status: ApprovalStatus
) -> tuple[Approval, DecisionOutcome]:
    concluded = approval.model_copy(
        update={
            "decisions": [*approval.decisions, decision],
            "status": status,
            "decided_by": decision.by,
            "decided_at": decision.at,
        }
    )
    return concluded, Concluded(approval=concluded)


def _with_edited_arguments(approval: Approval, decision: Decision) -> Approval:
    subject = approval.subject
    if not isinstance(subject, ToolCallSubject) or decision.edited_arguments is None:
        raise InvalidDecision(approval.id, "only a tool call's arguments can be edited")
    # The preview showed what the original call would do; it says nothing true of the edit.
    asked = subject.original_arguments or subject.arguments
    edited = subject.model_copy(update={"arguments": decision.edited_arguments, "preview": None,
                                        "original_arguments": asked})  # fmt: skip
    # Re-validating recomputes the digest, so the edit binds the new arguments.
    return Approval.model_validate({**approval.model_dump(), "subject": edited.model_dump()})
