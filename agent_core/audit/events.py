"""What the audit trail records, typed: one event class per :class:`AuditKind`.

A writer builds one of these and hands it to :meth:`~agent_core.audit.trail.Audit.record`;
:func:`stored` is the one place an event becomes the stored ``(kind, data)`` of an
:class:`~agent_core.models.AuditEvent`, and :func:`read` the one place it becomes an event
again. The stored form is what the chain seals, so it is exactly what airlock always wrote
for each kind. A trail is read only by people (``airlock audit``, ``/agent audit``), never to
decide anything, and it may hold what another version, or a forger, wrote: :func:`read`
gives an :class:`UnknownEvent` for a kind or data it does not recognise, never an error.
"""

from __future__ import annotations

from typing import ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from agent_core.llm.messages import ContentBlock, Message
from agent_core.models import (
    ApprovalStatus,
    AuditEvent,
    AuditKind,
    DecisionKind,
    Plan,
    RiskLevel,
    RunStatus,
    Spend,
    Subject,
    TimeoutPolicy,
)
from agent_core.toolcalls import ProcessRecord, ToolCall

__all__ = [
    "AnswerFeedback",
    "AnswerFeedbackRefused",
    "ApprovalCancelled",
    "ApprovalDecided",
    "ApprovalEscalated",
    "ApprovalExpired",
    "ApprovalGrantedForRun",
    "ApprovalKept",
    "ApprovalReasked",
    "ApprovalRequested",
    "ApprovalSuperseded",
    "ApprovalUndeliverable",
    "DecisionRefused",
    "Halt",
    "InjectionSuspected",
    "KillAll",
    "KillRefused",
    "LLMAsked",
    "LLMCall",
    "LLMFailed",
    "MemoryAdded",
    "MemoryForgotten",
    "PlanCreated",
    "Recorded",
    "Resume",
    "RetryRefused",
    "RunClaimed",
    "RunFinished",
    "RunKilled",
    "RunRefused",
    "RunRetried",
    "SubtaskFinished",
    "TokenCounts",
    "ToolCalled",
    "ToolOutcomeUnknown",
    "ToolProcessEnded",
    "ToolProcessStarted",
    "ToolRefused",
    "ToolResult",
    "ToolResultReused",
    "UnknownEvent",
    "read",
    "stored",
]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[AuditKind]
    _written_when_set: ClassVar[frozenset[str]] = frozenset()
    """Fields stored only when not None (every other field is stored, None as null)."""

    def data(self) -> dict[str, JsonValue]:
        """The stored data: JSON, exactly as airlock has always written this kind."""
        unset = {name for name in self._written_when_set if getattr(self, name) is None}
        return self.model_dump(mode="json", exclude=unset)


class _OfCall(_Event):
    """An event about one tool call, stored with the call's tool and id."""

    tool: str
    tool_use_id: str


# A run's life


class PlanCreated(_Event):
    """The planner's plan was accepted."""

    kind = AuditKind.PLAN_CREATED
    plan: Plan


class RunClaimed(_Event):
    """A process took the run up (new, resumed or taken over)."""

    kind = AuditKind.RUN_CLAIMED
    worker: str
    status: RunStatus
    attempt: int


class RunRefused(_Event):
    """A new run was refused: a daily budget or the hourly limit is used up."""

    kind = AuditKind.RUN_REFUSED
    limit: str
    used: int | float
    """As counted: a number of runs, or dollars (an int stays one in what is stored)."""
    allowed: int | float


class SubtaskFinished(_Event):
    """One subtask ended; ``output`` is its result's first characters."""

    kind = AuditKind.SUBTASK_FINISHED
    subtask_id: str
    status: Literal["completed", "failed"]
    output: str
    error: str | None


class RunFinished(_Event):
    """The run ended; ``result`` is its first characters."""

    kind = AuditKind.RUN_FINISHED
    status: RunStatus
    result: str
    spend: Spend


class RunKilled(_Event):
    """The run was killed (by the event's actor)."""

    kind = AuditKind.RUN_KILLED
    reason: str


class RunRetried(_Event):
    """The run was queued again as ``attempt``."""

    kind = AuditKind.RUN_RETRIED
    attempt: int


# The model


class LLMAsked(BaseModel):
    """What a model call asked: the turn's new input, and digests of the rest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tier: str
    system_sha256: str
    messages: int
    """How many messages the conversation had (the earlier ones are in the trail already)."""
    input: Message | None
    """The last message: the turn's new input."""
    tools: list[str]


class TokenCounts(BaseModel):
    """Tokens a model call used, by kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int


class LLMCall(_Event):
    """A model call and its answer."""

    kind = AuditKind.LLM_CALL
    request: LLMAsked
    model: str
    stop_reason: str
    content: list[ContentBlock]
    usage: TokenCounts
    cost_usd: float


class LLMFailed(_Event):
    """A model call that failed for good."""

    kind = AuditKind.LLM_ERROR
    request: LLMAsked
    model: str
    error: str


# Tools


class ToolCalled(_OfCall):
    """A tool call is made, with the arguments it runs with."""

    kind = AuditKind.TOOL_CALL
    _written_when_set = frozenset({"original_arguments", "worker"})
    arguments: dict[str, JsonValue]
    approval_id: str | None
    approved_by: str | None
    original_arguments: dict[str, JsonValue] | None = None
    """What the model asked for, when an approver edited the arguments."""
    worker: str | None = None
    """The process that holds the run, when runs are leased."""

    @classmethod
    def of(
        cls,
        call: ToolCall,
        *,
        approval_id: str | None,
        approved_by: str | None,
        original_arguments: dict[str, JsonValue] | None = None,
        worker: str | None = None,
    ) -> ToolCalled:
        """``call`` made as the gate allowed it."""
        return cls(tool=call.tool, tool_use_id=call.id, arguments=call.arguments,
                   approval_id=approval_id, approved_by=approved_by,
                   original_arguments=original_arguments, worker=worker)  # fmt: skip


class ToolResult(_OfCall):
    """A tool call returned; ``output`` is its first characters."""

    kind = AuditKind.TOOL_RESULT
    is_error: bool
    output: str
    flags: list[str]
    duration_ms: float


class ToolRefused(_OfCall):
    """A tool call was not made: the gate refused it."""

    kind = AuditKind.TOOL_REFUSED
    arguments: dict[str, JsonValue]
    reason: str


class ToolResultReused(_OfCall):
    """A resumed run gave the model the result its journal kept, without calling again."""

    kind = AuditKind.TOOL_RESULT_REUSED


class ToolOutcomeUnknown(_OfCall):
    """A resumed run told the model it cannot know whether an earlier attempt finished."""

    kind = AuditKind.TOOL_OUTCOME_UNKNOWN


class ToolProcessStarted(_OfCall):
    """A tool call started a process."""

    kind = AuditKind.TOOL_PROCESS_STARTED
    process: ProcessRecord


class ToolProcessEnded(_OfCall):
    """What earlier attempts of a call left running was ended (``confirmed``: all of it)."""

    kind = AuditKind.TOOL_PROCESS_ENDED
    confirmed: bool


class InjectionSuspected(_OfCall):
    """A tool's output looks like instructions to the model."""

    kind = AuditKind.INJECTION_SUSPECTED
    flags: list[str]


# Approvals


class ApprovalRequested(_Event):
    """An approval was persisted and is being asked."""

    kind = AuditKind.APPROVAL_REQUESTED
    approval_id: str
    risk: RiskLevel
    subject: Subject


class ApprovalReasked(_Event):
    """A call is asked again at a higher risk than ``supersedes`` approved (``was``)."""

    kind = AuditKind.APPROVAL_REASKED
    approval_id: str
    supersedes: str
    risk: RiskLevel
    was: RiskLevel


class ApprovalDecided(_Event):
    """A person's decision, as recorded, and what it did to the approval."""

    kind = AuditKind.APPROVAL_DECIDED
    approval_id: str
    decision: DecisionKind
    outcome: str
    reason: str | None
    edited_arguments: dict[str, JsonValue] | None
    status: ApprovalStatus


class ApprovalSuperseded(_Event):
    """An approver's edit made the call riskier: it is asked again."""

    kind = AuditKind.APPROVAL_SUPERSEDED
    approval_id: str
    risk: RiskLevel
    edited_risk: str
    """The edit's risk, or ``"None"`` when it had none worked out."""
    edited_arguments: dict[str, JsonValue] | None


class ApprovalGrantedForRun(_Event):
    """A call was allowed by an approve-for-this-run grant, without asking."""

    kind = AuditKind.APPROVAL_GRANTED_FOR_RUN
    tool: str
    arguments: dict[str, JsonValue]
    tool_use_id: str | None
    granted_by: str
    approval_id: str
    risk: RiskLevel


class ApprovalKept(_Event):
    """Its deadline passed; the policy keeps it waiting."""

    kind = AuditKind.APPROVAL_KEPT
    approval_id: str


class ApprovalExpired(_Event):
    """Nobody decided in time; ``policy`` is what its risk's timeout policy does next."""

    kind = AuditKind.APPROVAL_EXPIRED
    approval_id: str
    policy: TimeoutPolicy


class ApprovalCancelled(_Event):
    """Closed undecided: its run is over, gone or killed."""

    kind = AuditKind.APPROVAL_CANCELLED
    approval_id: str
    reason: str


class ApprovalEscalated(_Event):
    """Its deadline passed; it went to ``to``, escalation step ``hop``."""

    kind = AuditKind.APPROVAL_ESCALATED
    approval_id: str
    to: str
    hop: int


class ApprovalUndeliverable(_Event):
    """Nobody could be asked (Slack refused the request): closed as cancelled."""

    kind = AuditKind.APPROVAL_UNDELIVERABLE
    approval_id: str
    reason: str


class DecisionRefused(_Event):
    """A decision that changed nothing: not allowed, or not possible on this approval."""

    kind = AuditKind.DECISION_REFUSED
    approval_id: str
    decision: DecisionKind
    reason: str


# People operating airlock


class KillRefused(_Event):
    """Someone who may not kill the run tried to."""

    kind = AuditKind.KILL_REFUSED


class RetryRefused(_Event):
    """Someone who may not retry the run tried to."""

    kind = AuditKind.RETRY_REFUSED


class KillAll(_Event):
    """An admin killed every run."""

    kind = AuditKind.KILL_ALL
    reason: str | None


class Halt(_Event):
    """An admin halted airlock: every run killed, new ones refused."""

    kind = AuditKind.HALT
    reason: str | None


class Resume(_Event):
    """An admin let airlock take runs again."""

    kind = AuditKind.RESUME


class MemoryAdded(_Event):
    """A person added a memory (``merged``: into one it replaced)."""

    kind = AuditKind.MEMORY_ADDED
    memory_id: str
    scope: str
    merged: bool


class MemoryForgotten(_Event):
    """A person deleted a memory."""

    kind = AuditKind.MEMORY_FORGOTTEN
    memory_id: str
    scope: str


class AnswerFeedback(_Event):
    """The person who asked for the run said whether its answer helped."""

    kind = AuditKind.ANSWER_FEEDBACK
    value: str


class AnswerFeedbackRefused(_Event):
    """Someone else tried to say whether the run's answer helped."""

    kind = AuditKind.ANSWER_FEEDBACK_REFUSED
    value: str


Recorded = (
    PlanCreated | RunClaimed | RunRefused | SubtaskFinished | RunFinished | RunKilled
    | RunRetried | LLMCall | LLMFailed | ToolCalled | ToolResult | ToolRefused
    | ToolResultReused | ToolOutcomeUnknown | ToolProcessStarted | ToolProcessEnded
    | InjectionSuspected | ApprovalRequested | ApprovalReasked | ApprovalDecided
    | ApprovalSuperseded | ApprovalGrantedForRun | ApprovalKept | ApprovalExpired
    | ApprovalCancelled | ApprovalEscalated | ApprovalUndeliverable | DecisionRefused
    | KillRefused | RetryRefused | KillAll | Halt | Resume | MemoryAdded | MemoryForgotten
    | AnswerFeedback | AnswerFeedbackRefused
)  # fmt: skip
"""Every event airlock writes: one class per :class:`AuditKind`."""

_BY_KIND: dict[str, type[Recorded]] = {event.kind.value: event for event in get_args(Recorded)}


class UnknownEvent(BaseModel):
    """A stored event :func:`read` does not recognise: a kind of another version, or data
    that is not what airlock writes for its kind (an older version's, or a forger's)."""

    model_config = ConfigDict(frozen=True)

    kind: str
    data: dict[str, JsonValue]
    """As stored."""


def stored(event: Recorded) -> tuple[AuditKind, dict[str, JsonValue]]:
    """The ``(kind, data)`` an event is stored as."""
    return event.kind, event.data()


def read(event: AuditEvent) -> Recorded | UnknownEvent:
    """A stored event, typed; :class:`UnknownEvent` when it is not one airlock writes."""
    known = _BY_KIND.get(event.kind)
    if known is None:
        return UnknownEvent(kind=event.kind, data=event.data)
    try:
        return known.model_validate(event.data)
    except ValidationError:
        return UnknownEvent(kind=event.kind, data=event.data)
