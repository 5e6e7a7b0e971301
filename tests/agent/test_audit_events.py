"""Typed audit events: each kind is one class, stored exactly as airlock always wrote it, and
a trail written by an older version (or garbled) still reads, shows and verifies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest
from typer.testing import CliRunner

from agent_core.audit import events
from agent_core.audit.chain import AuditKey
from agent_core.audit.trail import Audit, verify_store
from agent_core.models import (
    ApprovalStatus,
    AuditEvent,
    AuditKind,
    DecisionKind,
    Plan,
    RiskLevel,
    RunStatus,
    Spend,
    Subtask,
    ToolCallSubject,
)
from agent_core.store import Store, open_store
from agent_core.toolcalls import ProcessRecord, ToolCall
from bot.cli.audit import describe
from bot.cli.main import app
from tests.support import TEST_AUDIT_KEY

CALL = ToolCall(id="toolu_1", tool="run_command", arguments={"cmd": "systemctl restart web"})
PLAN = Plan(subtasks=[Subtask(id="s1", description="restart", risk_level=RiskLevel.HIGH)])
SUBJECT = ToolCallSubject(subtask_id="s1", tool="run_command", arguments=CALL.arguments)
PROCESS = ProcessRecord(pid=42, started=7, boot_id="b", host="h", sandboxed=True)

# What the writers of the previous version passed as data, kind by kind, and the typed event
# that must now store exactly the same.
OLD_AND_NEW: list[tuple[AuditKind, dict[str, Any], events.Recorded]] = [
    (AuditKind.TOOL_CALL,
     {"tool": "run_command", "tool_use_id": "toolu_1", "arguments": CALL.arguments,
      "approval_id": None, "approved_by": None},
     events.ToolCalled.of(CALL, approval_id=None, approved_by=None)),
    (AuditKind.TOOL_CALL,
     {"tool": "run_command", "tool_use_id": "toolu_1", "arguments": CALL.arguments,
      "approval_id": "apr_1", "approved_by": "U1", "original_arguments": {"cmd": "rm -rf /"},
      "worker": "w1"},
     events.ToolCalled.of(CALL, approval_id="apr_1", approved_by="U1",
                          original_arguments={"cmd": "rm -rf /"}, worker="w1")),
    (AuditKind.APPROVAL_REQUESTED,
     {"approval_id": "apr_1", "risk": "high", "subject": SUBJECT.model_dump(mode="json")},
     events.ApprovalRequested(approval_id="apr_1", risk=RiskLevel.HIGH, subject=SUBJECT)),
    (AuditKind.PLAN_CREATED, {"plan": PLAN.model_dump(mode="json")},
     events.PlanCreated(plan=PLAN)),
    (AuditKind.RUN_FINISHED,
     {"status": "completed", "result": "done", "spend": Spend(llm_calls=2).model_dump(mode="json")},
     events.RunFinished(status=RunStatus.COMPLETED, result="done", spend=Spend(llm_calls=2))),
    (AuditKind.TOOL_PROCESS_STARTED,
     {"tool": "run_command", "tool_use_id": "toolu_1", "process": PROCESS.model_dump(mode="json")},
     events.ToolProcessStarted(tool="run_command", tool_use_id="toolu_1", process=PROCESS)),
    (AuditKind.APPROVAL_DECIDED,
     {"approval_id": "apr_1", "decision": "approve", "outcome": "concluded", "reason": None,
      "edited_arguments": None, "status": "approved"},
     events.ApprovalDecided(approval_id="apr_1", decision=DecisionKind.APPROVE,
                            outcome="concluded", reason=None, edited_arguments=None,
                            status=ApprovalStatus.APPROVED)),
    (AuditKind.LLM_CALL,
     {"request": {"tier": "executor", "system_sha256": "ab", "messages": 1,
                  "input": {"role": "user", "content": "hi"}, "tools": ["run_command"]},
      "model": "claude", "stop_reason": "end_turn",
      "content": [{"type": "text", "text": "hello"}],
      "usage": {"input_tokens": 3, "output_tokens": 1, "cache_write_tokens": 0,
                "cache_read_tokens": 0}, "cost_usd": 0.5},
     events.LLMCall(
         request=events.LLMAsked(tier="executor", system_sha256="ab", messages=1,
                                 input={"role": "user", "content": "hi"}, tools=["run_command"]),
         model="claude", stop_reason="end_turn", content=[{"type": "text", "text": "hello"}],
         usage=events.TokenCounts(input_tokens=3, output_tokens=1, cache_write_tokens=0,
                                  cache_read_tokens=0),
         cost_usd=0.5)),
    (AuditKind.KILL_REFUSED, {}, events.KillRefused()),
    (AuditKind.HALT, {"reason": None}, events.Halt(reason=None)),
]  # fmt: skip


def test_every_kind_is_one_event_class() -> None:
    kinds = [cls.kind for cls in get_args(events.Recorded)]
    assert sorted(kinds) == sorted(AuditKind) and len(set(kinds)) == len(kinds)


@pytest.mark.parametrize(("kind", "old", "new"), OLD_AND_NEW)
def test_an_event_is_stored_as_the_old_writers_stored_it_and_reads_back(
    kind: AuditKind, old: dict[str, Any], new: events.Recorded
) -> None:
    assert events.stored(new) == (kind, old)
    stored = AuditEvent(run_id="run_a", kind=kind, actor="airlock", data=old)
    assert events.read(stored) == new


def test_data_that_is_not_what_airlock_writes_reads_as_unknown() -> None:
    garbled = [
        ("tool_call", {"tool": 7}),  # missing fields, wrong type
        ("tool_call", {**OLD_AND_NEW[0][1], "planted": True}),  # a field airlock never wrote
        ("llm_call", {"usage": "lots"}),
        ("kind_of_a_later_version", {"x": 1}),
    ]
    for kind, data in garbled:
        read = events.read(AuditEvent(run_id="run_a", kind=kind, actor="a", data=data))
        assert read == events.UnknownEvent(kind=kind, data=data)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path / 'airlock.db'}", audit_key=TEST_AUDIT_KEY)
    yield opened
    await opened.close()


async def test_an_old_trail_still_verifies_shows_and_takes_new_typed_events(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events written the old way (kind and a dict, straight to the store), some of them as an
    older version or a forger might have left them, then a new typed one on the same chain."""
    old = [
        AuditEvent(run_id="_global", kind=kind, actor="airlock", data=data,
                   at=datetime(2026, 1, 1, tzinfo=UTC))
        for kind, data, _ in OLD_AND_NEW
    ] + [
        AuditEvent(run_id="_global", kind="tool_result", actor="airlock",
                   data={"tool": "x", "output": None}),  # garbled
        AuditEvent(run_id="_global", kind="retired_kind", actor="airlock", data={"a": [1]}),
    ]  # fmt: skip
    stored = [await store.append_audit(event) for event in old]
    await Audit(store=store).record("_global", events.Resume(), actor="U0ADMIN")

    trail = await store.read_audit("_global")
    assert [e.model_dump() for e in trail.events[: len(stored)]] == [
        e.model_dump() for e in stored
    ], "what was stored is read back byte for byte"
    assert trail.events[-1].kind == "resume" and trail.events[-1].data == {}
    report = await verify_store(store, AuditKey.from_text(TEST_AUDIT_KEY), ["_global"])
    assert not report.broken, report.lines()
    assert [describe(e) for e in trail.events]  # every event has a line, garbled ones too

    monkeypatch.setenv("AIRLOCK_STORE_URL", f"sqlite:///{tmp_path / 'airlock.db'}")
    monkeypatch.setenv("AIRLOCK_AUDIT_KEY", TEST_AUDIT_KEY)
    for command in ("show", "verify"):
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["audit", command, "_global", "--env-file", "/dev/null"]
        )
        assert result.exit_code == 0, result.output
