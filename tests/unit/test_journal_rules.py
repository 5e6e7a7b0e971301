"""What a resumed round does with a call, from its journal record; and how a trail written
before the journal becomes records."""

from __future__ import annotations

import pytest

from agent_core.clock import utcnow
from agent_core.models import AuditEvent, RiskLevel
from agent_core.runs.journal import (
    OutcomeUnknown,
    Proceed,
    Reuse,
    end_leftovers,
    from_audit,
    recovery,
)
from agent_core.toolcalls import ProcessRecord, ToolCallRecord, ToolCallState

STARTED = ToolCallRecord(run_id="run_a", tool_use_id="toolu_1", tool="send", digest="d")
FINISHED = STARTED.ended(ToolCallState.FINISHED, output="sent", is_error=True, at=utcnow())


@pytest.mark.parametrize(
    ("record", "idempotent", "risk", "expected"),
    [
        (None, False, RiskLevel.LOW, Proceed()),
        (FINISHED, False, RiskLevel.CRITICAL, Reuse(output="sent", is_error=True)),
        (STARTED, False, RiskLevel.LOW, OutcomeUnknown(record=STARTED)),
        (STARTED, False, RiskLevel.MEDIUM, OutcomeUnknown(record=STARTED)),
        (STARTED, True, RiskLevel.LOW, Proceed()),
        (STARTED, False, RiskLevel.HIGH, Proceed()),
        (STARTED, False, RiskLevel.CRITICAL, Proceed()),
    ],
)
def test_the_recovery_rule(
    record: ToolCallRecord | None, idempotent: bool, risk: RiskLevel, expected: object
) -> None:
    assert recovery(record, idempotent=idempotent, risk=risk) == expected


def event(kind: str, **data: object) -> AuditEvent:
    return AuditEvent(run_id="run_a", kind=kind, actor="airlock",
                      data={"tool": "send", "tool_use_id": "toolu_1", **data})  # fmt: skip


def test_a_trail_before_the_journal_becomes_records() -> None:
    trail = [
        event("tool_call", arguments={"to": "ops"}),
        event("tool_result", output="first", is_error=False),
        event("tool_result", output="second", is_error=True),
        event("tool_refused", reason="no").model_copy(
            update={"data": {"tool": "send", "tool_use_id": "toolu_2"}}
        ),
    ]
    records = from_audit(trail, ["toolu_1", "toolu_2", "toolu_3"])
    assert list(records) == ["toolu_1"]  # a refused call never started
    record = records["toolu_1"]
    assert (record.state, record.output) == (ToolCallState.FINISHED, "first")
    assert not record.is_error


async def test_an_unreadable_process_record_is_never_confirmed_ended() -> None:
    trail = [event("tool_call", arguments={}), event("tool_process_started", process={"pid": "?"})]
    record = from_audit(trail, ["toolu_1"])["toolu_1"]
    assert record.state is ToolCallState.STARTED and len(record.processes) == 1
    assert await end_leftovers(record) is False


async def test_a_finished_call_or_one_without_processes_has_nothing_to_end() -> None:
    assert await end_leftovers(None) is None
    assert await end_leftovers(STARTED) is None
    process = ProcessRecord(pid=1, started=1, boot_id="b", host="", sandboxed=True)
    assert await end_leftovers(FINISHED.with_process(process)) is None
