"""Domain models: digests, the run state machine, compact serialisation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent_core.models import (
    TRANSITIONS,
    Approval,
    AuditEvent,
    Plan,
    RiskLevel,
    Run,
    RunStatus,
    Subtask,
    ToolCallSubject,
    canonical_json,
    is_legal_transition,
)
from agent_core.store.base import dump


def tool_approval(arguments: dict[str, object], **subject: str) -> Approval:
    fields = {"subtask_id": "s1", "tool": "run_command"} | subject
    return Approval(
        run_id="run_a",
        subject=ToolCallSubject(arguments=arguments, **fields),  # type: ignore[arg-type]
        risk=RiskLevel.HIGH,
    )


def test_the_digest_ignores_key_order_and_binds_everything_else() -> None:
    base = tool_approval({"cmd": "ls", "cwd": "/srv"})
    assert tool_approval({"cwd": "/srv", "cmd": "ls"}).digest == base.digest
    assert tool_approval({"cmd": "ls", "cwd": "/"}).digest != base.digest
    assert tool_approval({"cmd": "ls", "cwd": "/srv"}, tool="other").digest != base.digest
    assert tool_approval({"cmd": "ls", "cwd": "/srv"}, subtask_id="s2").digest != base.digest
    other_run = base.model_copy(update={"run_id": "run_b"})
    assert Approval.model_validate(other_run.model_dump()).digest != base.digest


def test_a_stored_digest_cannot_be_forged() -> None:
    approval = tool_approval({"cmd": "ls"})
    forged = approval.model_dump() | {"digest": "0" * 64}
    assert Approval.model_validate(forged).digest == approval.digest


def test_canonical_json_is_stable() -> None:
    assert (
        canonical_json({"b": [1, {"d": 2, "c": 3}], "a": "é"}) == '{"a":"é","b":[1,{"c":3,"d":2}]}'
    )


def test_final_statuses_only_lead_back_to_the_queue() -> None:
    for status, targets in TRANSITIONS.items():
        assert status not in targets
        if status.is_final:
            assert targets <= {RunStatus.QUEUED}
    assert is_legal_transition(RunStatus.AWAITING_APPROVAL, RunStatus.RUNNING)
    assert not is_legal_transition(RunStatus.COMPLETED, RunStatus.QUEUED)
    assert not is_legal_transition(RunStatus.KILLED, RunStatus.RUNNING)


def test_a_plan_carries_its_highest_risk() -> None:
    plan = Plan(
        subtasks=[
            Subtask(id="a", description="look", risk_level=RiskLevel.LOW),
            Subtask(id="b", description="change", risk_level=RiskLevel.HIGH),
        ]
    )
    assert plan.risk is RiskLevel.HIGH
    with pytest.raises(ValidationError):
        Plan(subtasks=[])


def test_records_reject_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        Run.model_validate({"goal": "x", "requester": "U1", "surprise": True})


def test_a_parked_run_and_its_approval_stay_small() -> None:
    run = Run(goal="restart the web tier in staging", requester="U012AB3CD", channel="C111")
    approval = tool_approval({"cmd": "systemctl restart web"})
    assert len(dump(run)) + len(dump(approval)) < 1024


def test_an_audit_event_hash_covers_its_content() -> None:
    event = AuditEvent(run_id="run_a", kind="tool_call", actor="U1", data={"tool": "x"})
    first = event.chained(seq=1, prev_hash="")
    tampered = first.model_copy(update={"data": {"tool": "y"}})
    assert tampered.chained(seq=1, prev_hash="").hash != first.hash
    assert first.chained(seq=1, prev_hash="").hash == first.hash
