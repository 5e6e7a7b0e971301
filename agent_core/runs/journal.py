"""The tool-call journal, and what a resumed round does with each call it finds there.

Every call that runs is written to the store before it runs (``started``), with every process
it starts, and again when it returns (``finished``, committed with the checkpoint that holds
the call's result: one step, :meth:`ToolJournal.step`). A round picked up after the process
stopped reads the records of its calls in one lookup and decides from them alone:

- a call that finished has its result reused: it is not made twice;
- one that started and never finished first has what it started ended
  (:func:`end_leftovers`), then is made again only if its tool is idempotent; a LOW or MEDIUM
  one that is not gets "outcome unknown" (and its record says so), and a HIGH or CRITICAL one
  goes on to the gate, which asks a person again;
- one with no record never started, and goes ahead as usual.

Runs begun by a version that kept no journal have their calls only in the audit trail; for
those (and only those) the records of a resumed round are read from the trail instead, once
(:func:`from_audit`). Nothing else here reads the audit trail.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError

from agent_core.clock import Clock, SystemClock
from agent_core.models import AuditEvent, AuditKind, RiskLevel
from agent_core.store import Step, Store, ToolCallJournal
from agent_core.toolcalls import (
    ProcessRecord,
    ToolCall,
    ToolCallRecord,
    ToolCallState,
    arguments_digest,
)
from agent_core.tools.processes import end_leftover

__all__ = [
    "OUTCOME_UNKNOWN",
    "Attempt",
    "OutcomeUnknown",
    "Proceed",
    "Recovery",
    "Reuse",
    "ToolJournal",
    "end_leftovers",
    "from_audit",
    "recovery",
]

logger = logging.getLogger(__name__)

OUTCOME_UNKNOWN = (
    "not run again: an earlier attempt of this call started before the process stopped, and"
    " whether it finished is unknown. Check its effect before calling it again."
)
"""What the model is told of a call that may have run part-way and is not made again."""


@dataclass(kw_only=True, frozen=True)
class Reuse:
    """The call finished before: answer with its recorded result."""

    kind: Literal["reuse"] = "reuse"
    output: str
    is_error: bool


@dataclass(kw_only=True, frozen=True)
class OutcomeUnknown:
    """The call started and may have run part-way; not idempotent, not risky enough to ask a
    person: tell the model its outcome is unknown."""

    kind: Literal["outcome_unknown"] = "outcome_unknown"
    record: ToolCallRecord


@dataclass(kw_only=True, frozen=True)
class Proceed:
    """Go ahead as usual: the call never started, its tool is idempotent, or it is HIGH or
    CRITICAL, and the gate asks a person again (marked possibly partial)."""

    kind: Literal["proceed"] = "proceed"


Recovery = Reuse | OutcomeUnknown | Proceed
"""What a resumed round does with one of its calls."""


def recovery(record: ToolCallRecord | None, *, idempotent: bool, risk: RiskLevel) -> Recovery:
    """What to do, in a resumed round, with a call whose journal record is ``record``."""
    if record is None:
        return Proceed()
    if record.state is ToolCallState.FINISHED:
        return Reuse(output=record.output or "", is_error=record.is_error)
    # Started, or answered "outcome unknown" in a round that was never checkpointed: either
    # way whether it ran is unknown, and the same rule as on the first resume applies.
    if idempotent or risk.rank >= RiskLevel.HIGH.rank:
        return Proceed()
    return OutcomeUnknown(record=record)


async def end_leftovers(record: ToolCallRecord | None) -> bool | None:
    """End what earlier attempts of a call started and left running (the process died during
    the call); whether all of it was confirmed ended. None: it started nothing airlock knows
    of, or it finished."""
    if record is None or record.state is ToolCallState.FINISHED or not record.processes:
        return None
    ended = [await end_leftover(process) for process in record.processes]
    return all(ended)


@dataclass(kw_only=True)
class Attempt:
    """One attempt of a call, kept in the journal as it goes."""

    store: ToolCallJournal
    clock: Clock
    record: ToolCallRecord
    """The record as last written."""

    async def process_started(self, process: ProcessRecord) -> None:
        """Keep ``process`` before anything else happens: a crash must not lose it."""
        self.record = self.record.with_process(process)
        await self.store.save_tool_call(self.record)

    async def finished(self, output: str, *, is_error: bool) -> None:
        """The call returned ``output``."""
        self.record = self.record.ended(
            ToolCallState.FINISHED, output=output, is_error=is_error, at=self.clock.now()
        )
        await self.store.save_tool_call(self.record)


@dataclass(kw_only=True)
class ToolJournal:
    """A run's tool calls in the store: what crash recovery decides from."""

    store: Store
    clock: Clock = field(default_factory=SystemClock)
    audit_fallback: bool = False
    """The run began under a version that kept no journal: the calls of a resumed round that
    have no record are looked up in its audit trail (read once for the round)."""

    def step(self, run_id: str) -> AbstractAsyncContextManager[Step]:
        """One step of the run: its journal records and audit events land with the run's next
        save, in one transaction (:mod:`agent_core.store.steps`)."""
        return self.store.step(run_id)

    async def lookup(self, run_id: str, tool_use_ids: Sequence[str]) -> dict[str, ToolCallRecord]:
        """The records of a resumed round's calls, by tool_use id, in one read."""
        found = await self.store.tool_calls(run_id, tool_use_ids)
        missing = [key for key in tool_use_ids if key not in found]
        if self.audit_fallback and missing:
            found |= from_audit(await self.store.list_audit(run_id), missing)
        return found

    async def start(
        self, run_id: str, call: ToolCall, *, earlier: ToolCallRecord | None
    ) -> Attempt:
        """Record, before it runs, that ``call`` begins (again, after ``earlier``)."""
        digest, now = call.digest, self.clock.now()
        if earlier is None:
            record = ToolCallRecord(
                run_id=run_id, tool_use_id=call.id, tool=call.tool, digest=digest, started_at=now
            )
        else:
            record = earlier.again(digest=digest, at=now)
        await self.store.save_tool_call(record)
        return Attempt(store=self.store, clock=self.clock, record=record)

    async def outcome_unknown(self, record: ToolCallRecord) -> None:
        """Record that the model was told ``record``'s call has an unknown outcome."""
        told = record.ended(
            ToolCallState.OUTCOME_UNKNOWN, output=OUTCOME_UNKNOWN, is_error=True,
            at=self.clock.now(),
        )  # fmt: skip
        await self.store.save_tool_call(told)


# Runs begun before the journal: their calls are known from the audit trail only.

_UNREADABLE = ProcessRecord(pid=0, started=0, boot_id="", host="", sandboxed=False)
"""Stands for a process record the trail holds but that cannot be read: what it started
cannot be found, so it is never confirmed ended (no machine is named "")."""


def from_audit(
    events: Sequence[AuditEvent], tool_use_ids: Sequence[str]
) -> dict[str, ToolCallRecord]:
    """The records of these calls as a trail written before the journal tells them: started
    at its ``tool_call``, with the processes of its ``tool_process_started``, finished with
    its first ``tool_result`` (whose output the trail kept shortened)."""
    wanted = set(tool_use_ids)
    records: dict[str, ToolCallRecord] = {}
    for event in events:
        key = event.data.get("tool_use_id")
        if not isinstance(key, str) or key not in wanted:
            continue
        record = records.get(key) or _started(event, key)
        if event.kind == AuditKind.TOOL_PROCESS_STARTED:
            record = record.with_process(_process(event))
        elif event.kind == AuditKind.TOOL_RESULT and record.state is not ToolCallState.FINISHED:
            record = record.ended(
                ToolCallState.FINISHED, output=str(event.data.get("output", "")),
                is_error=bool(event.data.get("is_error")), at=event.at,
            )  # fmt: skip
        elif event.kind != AuditKind.TOOL_CALL:
            continue  # refusals, reuses, ends: they say nothing of whether it ran
        records[key] = record
    return records


def _started(event: AuditEvent, key: str) -> ToolCallRecord:
    arguments = event.data.get("arguments")
    return ToolCallRecord(
        run_id=event.run_id, tool_use_id=key, tool=str(event.data.get("tool", "")),
        digest=arguments_digest(arguments if isinstance(arguments, dict) else {}),
        started_at=event.at,
    )  # fmt: skip


def _process(event: AuditEvent) -> ProcessRecord:
    try:
        return ProcessRecord.model_validate(event.data.get("process"))
    except ValidationError:
        logger.warning("unreadable process record", extra={"run_id": event.run_id})
        return _UNREADABLE
