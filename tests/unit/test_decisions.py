"""The pure rule that turns a decision into an approval's new state."""

from __future__ import annotations

import pytest

from agent_core.approvals.rule import apply_decision, approvers_of_current_arguments
from agent_core.errors import InvalidDecision
from agent_core.models import (
    AlreadyDecided,
    Approval,
    ApprovalStatus,
    Concluded,
    Counted,
    Decision,
    DecisionKind,
    Duplicate,
    Plan,
    PlanSubject,
    RiskLevel,
    Subtask,
    ToolCallSubject,
)


def critical(required: int = 2) -> Approval:
    subject = ToolCallSubject(subtask_id="s1", tool="drop_table", arguments={"table": "users"},
                              preview="DROP TABLE users")  # fmt: skip
    return Approval(
        run_id="run_a", subject=subject, risk=RiskLevel.CRITICAL, required_approvals=required
    )


def decide(kind: DecisionKind, by: str, **fields: object) -> Decision:
    return Decision(kind=kind, by=by, **fields)  # type: ignore[arg-type]


def test_the_input_approval_is_never_modified() -> None:
    approval = critical()
    before = approval.model_dump()
    apply_decision(approval, decide(DecisionKind.APPROVE, "U0A"))
    assert approval.model_dump() == before


def test_approve_for_run_counts_like_an_approve() -> None:
    approval, outcome = apply_decision(critical(), decide(DecisionKind.APPROVE_FOR_RUN, "U0A"))
    assert isinstance(outcome, Counted)
    _, outcome = apply_decision(approval, decide(DecisionKind.APPROVE, "U0B"))
    assert isinstance(outcome, Concluded)
    assert outcome.approval.status is ApprovalStatus.APPROVED


def test_a_reject_concludes_even_with_approvals_counted() -> None:
    approval, _ = apply_decision(critical(3), decide(DecisionKind.APPROVE, "U0A"))
    approval, outcome = apply_decision(approval, decide(DecisionKind.REJECT, "U0B", reason="no"))
    assert isinstance(outcome, Concluded)
    assert (approval.status, approval.decided_by) == (ApprovalStatus.REJECTED, "U0B")


def test_an_edit_resets_the_count_to_the_editor() -> None:
    approval, _ = apply_decision(critical(3), decide(DecisionKind.APPROVE, "U0A"))
    approval, _ = apply_decision(approval, decide(DecisionKind.APPROVE, "U0B"))
    edit = decide(DecisionKind.EDIT, "U0C", edited_arguments={"table": "users_tmp"})
    edited, outcome = apply_decision(approval, edit)
    assert isinstance(outcome, Counted)
    assert outcome.approvals_needed == 2
    assert approvers_of_current_arguments(edited) == {"U0C"}
    assert edited.digest != approval.digest
    assert isinstance(edited.subject, ToolCallSubject) and edited.subject.preview is None
    # U0A approved the old arguments; approving the new ones counts again.
    _, again = apply_decision(edited, decide(DecisionKind.APPROVE, "U0A"))
    assert isinstance(again, Counted)


def test_the_same_person_cannot_fill_a_quorum() -> None:
    approval, _ = apply_decision(critical(), decide(DecisionKind.APPROVE, "U0A"))
    same, outcome = apply_decision(approval, decide(DecisionKind.APPROVE_FOR_RUN, "U0A"))
    assert isinstance(outcome, Duplicate)
    assert same is approval


def test_nothing_changes_a_settled_approval() -> None:
    approval, _ = apply_decision(critical(1), decide(DecisionKind.REJECT, "U0A"))
    for kind in DecisionKind:
        extra = {"edited_arguments": {"table": "x"}} if kind is DecisionKind.EDIT else {}
        after, outcome = apply_decision(approval, decide(kind, "U0ADMIN", as_admin=True, **extra))
        assert isinstance(outcome, AlreadyDecided)
        assert after is approval


def test_a_plan_cannot_be_edited() -> None:
    plan = Plan(subtasks=[Subtask(id="s1", description="x")])
    approval = Approval(run_id="run_a", subject=PlanSubject(plan=plan), risk=RiskLevel.HIGH)
    with pytest.raises(InvalidDecision):
        apply_decision(approval, decide(DecisionKind.EDIT, "U0A", edited_arguments={}))


def test_an_edit_must_carry_arguments_and_only_an_edit() -> None:
    with pytest.raises(ValueError, match="edited_arguments"):
        Decision(kind=DecisionKind.EDIT, by="U0A")
    with pytest.raises(ValueError, match="edited_arguments"):
        Decision(kind=DecisionKind.APPROVE, by="U0A", edited_arguments={"a": 1})


def test_recording_the_same_decision_again_reports_its_first_outcome() -> None:
    approval = critical()
    first = decide(DecisionKind.APPROVE, "U0A")
    counted, _ = apply_decision(approval, first)
    same, outcome = apply_decision(counted, first)
    assert isinstance(outcome, Duplicate) and same is counted

    final = decide(DecisionKind.APPROVE, "U0B")
    settled, _ = apply_decision(counted, final)
    again, outcome = apply_decision(settled, final)
    assert isinstance(outcome, Concluded)
    assert again is settled and len(again.decisions) == 2


def high(required: int = 1) -> Approval:
    arguments = {"command": "echo harmless"}
    subject = ToolCallSubject(subtask_id="s1", tool="run_command", arguments=arguments,
                              preview="$ echo harmless")  # fmt: skip
    return Approval(
        run_id="run_a", subject=subject, risk=RiskLevel.HIGH, required_approvals=required
    )


def test_a_riskier_edit_supersedes_the_request_and_approves_nothing() -> None:
    edit = decide(DecisionKind.EDIT, "U0A", edited_arguments={"command": "rm -rf /srv"},
                  edited_risk=RiskLevel.CRITICAL)  # fmt: skip
    approval, outcome = apply_decision(high(), edit)
    assert isinstance(outcome, Concluded)
    assert (approval.status, approval.decided_by) == (ApprovalStatus.SUPERSEDED, "U0A")
    assert isinstance(approval.subject, ToolCallSubject)
    assert approval.subject.arguments == {"command": "rm -rf /srv"}
    assert approval.subject.original_arguments == {"command": "echo harmless"}
    assert approval.subject.preview is None and approval.digest != high().digest
    again, replayed = apply_decision(approval, edit)
    assert again is approval and isinstance(replayed, Concluded)
    late, refused = apply_decision(approval, decide(DecisionKind.APPROVE, "U0B"))
    assert isinstance(refused, AlreadyDecided) and late.status is ApprovalStatus.SUPERSEDED


def test_an_edit_at_the_same_or_a_lower_risk_counts_as_the_editors_approve() -> None:
    same = decide(DecisionKind.EDIT, "U0A", edited_arguments={"command": "echo other"},
                  edited_risk=RiskLevel.HIGH)  # fmt: skip
    approval, outcome = apply_decision(high(), same)
    assert isinstance(outcome, Concluded) and approval.status is ApprovalStatus.APPROVED
    lower = decide(DecisionKind.EDIT, "U0A", edited_arguments={"table": "tmp"},
                   edited_risk=RiskLevel.HIGH)  # fmt: skip
    approval, outcome = apply_decision(critical(), lower)
    assert isinstance(outcome, Counted) and outcome.approvals_needed == 1  # the quorum stays


def test_edits_keep_the_arguments_the_model_asked_for() -> None:
    first = decide(DecisionKind.EDIT, "U0A", edited_arguments={"table": "a"})
    approval, _ = apply_decision(critical(3), first)
    second = decide(DecisionKind.EDIT, "U0B", edited_arguments={"table": "b"})
    approval, _ = apply_decision(approval, second)
    assert isinstance(approval.subject, ToolCallSubject)
    assert approval.subject.original_arguments == {"table": "users"}


def test_an_edited_risk_goes_with_an_edit_only() -> None:
    with pytest.raises(ValueError, match="edited_risk goes with an edit"):
        decide(DecisionKind.APPROVE, "U0A", edited_risk=RiskLevel.LOW)
