"""The tool-call journal's records: what became of each tool call of a run, kept in the store.

One :class:`ToolCallRecord` per call, keyed by (run id, tool_use id), written before the call
runs (``started``), told of every process the call starts, and closed with the call's result
(``finished``) or, when a resumed run could not know how an earlier attempt ended, with
``outcome_unknown``. Crash recovery decides from these records alone
(:mod:`agent_core.runs.journal`); the audit trail records the same steps for people.

They live below the store, which persists them, and import nothing of airlock above the
shared values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent_core.clock import utcnow
from agent_core.models import canonical_json

__all__ = ["ProcessRecord", "ToolCall", "ToolCallRecord", "ToolCallState", "arguments_digest"]


def arguments_digest(arguments: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of a call's arguments: equal arguments, equal digest."""
    return hashlib.sha256(canonical_json(arguments).encode()).hexdigest()


@dataclass(kw_only=True, frozen=True)
class ToolCall:
    """One tool call the model asked for: the value that goes from the model's tool_use block
    to the risk gate, the approval's subject, the journal, the audit trail and the span."""

    id: str
    """The model's id for the call (``toolu_...``), unique in the run."""
    tool: str
    """The tool's name, as the model gave it (it may name no tool)."""
    arguments: dict[str, Any]
    """Whatever JSON object the model sent; checked against the tool's schema before a call."""

    @property
    def digest(self) -> str:
        """:func:`arguments_digest` of the arguments."""
        return arguments_digest(self.arguments)


class ProcessRecord(BaseModel):
    """The leader of a command's process group, as started on one machine.

    Made by :func:`agent_core.tools.processes.running_process`; ended, after a crash, by
    :func:`agent_core.tools.processes.end_leftover`.
    """

    model_config = ConfigDict(frozen=True)

    pid: int
    """The leader's pid, which is also the group's id."""
    started: int
    """Its start time in clock ticks after boot (``/proc/<pid>/stat``): tells it from a
    later process that got the same pid."""
    boot_id: str
    """The kernel's boot id: after a reboot nothing of it runs any more."""
    host: str
    """The machine's name: another machine's processes cannot be checked from here."""
    sandboxed: bool
    """Whether it ran in the command sandbox, where ending the group ends everything it
    started (without the sandbox, a ``setsid`` child may have left the group)."""


class ToolCallState(StrEnum):
    """Where a tool call is: begun, or answered one way or the other."""

    STARTED = "started"
    """It began and no answer was recorded: it may have run in part, or wholly."""
    FINISHED = "finished"
    """It returned; ``output`` and ``is_error`` are its result."""
    OUTCOME_UNKNOWN = "outcome_unknown"
    """A resumed run found it started and not finished, and told the model so."""


class ToolCallRecord(BaseModel):
    """One tool call of a run in the journal.

    Secrets in ``output`` are masked by the store, as in the run's checkpoint.
    """

    model_config = ConfigDict(extra="forbid")

    run_id: str
    tool_use_id: str
    """The model's id for the call, unique in the run."""
    tool: str
    digest: str
    """:func:`arguments_digest` of the arguments it ran with (an approver's edit included)."""
    state: ToolCallState = ToolCallState.STARTED
    started_at: datetime = Field(default_factory=utcnow)
    """When its latest attempt began."""
    attempts: int = Field(default=1, ge=1)
    """How many times it began: more than once when a resumed run made it again."""
    processes: list[ProcessRecord] = Field(default_factory=list)
    """Every process its attempts started, oldest first."""
    ended_at: datetime | None = None
    output: str | None = None
    """The answer the model got: the call's result, or the outcome-unknown notice."""
    is_error: bool = False

    def again(self, *, digest: str, at: datetime) -> ToolCallRecord:
        """This call begun once more, what its earlier attempts started still listed."""
        return self.model_copy(update={
            "digest": digest, "state": ToolCallState.STARTED, "started_at": at,
            "attempts": self.attempts + 1, "ended_at": None, "output": None, "is_error": False,
        })  # fmt: skip

    def with_process(self, process: ProcessRecord) -> ToolCallRecord:
        """This call, having started ``process``."""
        return self.model_copy(update={"processes": [*self.processes, process]})

    def ended(
        self, state: ToolCallState, *, output: str, is_error: bool, at: datetime
    ) -> ToolCallRecord:
        """This call answered, as ``state``, with ``output``."""
        if state is ToolCallState.STARTED:
            raise ValueError("a call ends finished or with its outcome unknown")
        return self.model_copy(
            update={"state": state, "output": output, "is_error": is_error, "ended_at": at}
        )
