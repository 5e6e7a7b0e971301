"""The domain records that are persisted or cross a boundary.

Everything here is a pydantic model: validated on the way in, serialisable on
the way out, identical in every Store backend. Field names are kept short and
defaults are omitted from stored JSON so a parked run stays small.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from agent_core.clock import utcnow

__all__ = [
    "FINAL_STATUSES",
    "AlreadyDecided",
    "Approval",
    "ApprovalDecided",
    "ApprovalStatus",
    "AuditEvent",
    "AuditKind",
    "ChannelKind",
    "Concluded",
    "Counted",
    "Decision",
    "DecisionKind",
    "DecisionOutcome",
    "Duplicate",
    "HaltChanged",
    "HaltState",
    "JsonValue",
    "MessageLocation",
    "MessagePurpose",
    "MessageSubject",
    "Plan",
    "PlanSubject",
    "Precedent",
    "QuestionAnswered",
    "RiskLevel",
    "Run",
    "RunKilled",
    "RunStatus",
    "Signal",
    "Spend",
    "Subject",
    "Subtask",
    "SubtaskResult",
    "TimeoutPolicy",
    "ToolCallSubject",
    "canonical_json",
    "new_id",
]

JsonValue: TypeAlias = Any
"""Any JSON-serialisable value (kept loose: tool arguments are whatever a schema allows)."""


def new_id(prefix: str) -> str:
    """A short, random, URL-safe id such as ``run_4kq0x8tq3m2a``."""
    return f"{prefix}_{secrets.token_hex(6)}"


def canonical_json(value: JsonValue) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=False)


class RiskLevel(StrEnum):
    """How much harm an action can do; decides the approval gate."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Order for comparisons: low 0 ... critical 3."""
        return _RISK_RANK[self]

    @classmethod
    def highest(cls, levels: list[RiskLevel]) -> RiskLevel:
        """The highest of ``levels``; LOW for none."""
        return max(levels, key=lambda level: level.rank, default=cls.LOW)


_RISK_RANK = {RiskLevel.LOW: 0, RiskLevel.MEDIUM: 1, RiskLevel.HIGH: 2, RiskLevel.CRITICAL: 3}


class TimeoutPolicy(StrEnum):
    """What happens when nobody decides an approval by its deadline."""

    REJECT = "reject"
    """Expire it; the model is told and may try another way."""
    HALT = "halt"
    """Expire it and end the run as rejected."""
    KEEP = "keep"
    """Leave it pending: the run stays parked, at no cost, until someone decides."""
    ESCALATE = "escalate"
    """Hand it to the next approvers of the escalation chain, each hop with its own deadline."""


class RunStatus(StrEnum):
    """Where a run is in its life. See :data:`TRANSITIONS` for the legal moves."""

    QUEUED = "queued"
    PLANNING = "planning"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    KILLED = "killed"
    TIMED_OUT = "timed_out"
    BUDGET_EXCEEDED = "budget_exceeded"

    @property
    def is_final(self) -> bool:
        """True when nothing more will happen to the run (short of a retry)."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.REJECTED,
        RunStatus.KILLED,
        RunStatus.TIMED_OUT,
        RunStatus.BUDGET_EXCEEDED,
    }
)
_STOPS = {RunStatus.FAILED, RunStatus.KILLED, RunStatus.TIMED_OUT, RunStatus.BUDGET_EXCEEDED}

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.PLANNING, *_STOPS}),
    RunStatus.PLANNING: frozenset(
        {RunStatus.AWAITING_APPROVAL, RunStatus.RUNNING, RunStatus.COMPLETED, *_STOPS}
    ),
    RunStatus.AWAITING_APPROVAL: frozenset(
        {RunStatus.RUNNING, RunStatus.COMPLETED, RunStatus.REJECTED, *_STOPS}
    ),
    RunStatus.RUNNING: frozenset(
        {RunStatus.AWAITING_APPROVAL, RunStatus.COMPLETED, RunStatus.REJECTED, *_STOPS}
    ),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.REJECTED: frozenset(),
    RunStatus.KILLED: frozenset(),
    # A failed or stopped run may be retried from its checkpoint as a new attempt.
    RunStatus.FAILED: frozenset({RunStatus.QUEUED}),
    RunStatus.TIMED_OUT: frozenset({RunStatus.QUEUED}),
    RunStatus.BUDGET_EXCEEDED: frozenset({RunStatus.QUEUED}),
}
"""The run state machine: for each status, the statuses it may move to."""


def is_legal_transition(current: RunStatus, target: RunStatus) -> bool:
    """Whether a run may move from ``current`` to ``target``."""
    return target in TRANSITIONS[current]


class Subtask(_Record):
    """One step of a plan."""

    id: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1)
    required_tools: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    risk_level: RiskLevel = RiskLevel.LOW


class Plan(_Record):
    """What the planner proposes: subtasks with dependencies and risks."""

    subtasks: list[Subtask] = Field(min_length=1)

    @property
    def risk(self) -> RiskLevel:
        """The highest risk of any subtask."""
        return RiskLevel.highest([s.risk_level for s in self.subtasks])


class SubtaskResult(_Record):
    """The outcome of one subtask."""

    status: Literal["completed", "failed", "skipped", "rejected"]
    output: str = ""
    error: str | None = None
    finished_at: datetime = Field(default_factory=utcnow)


class Spend(_Record):
    """What a run has used so far."""

    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0


class ChannelKind(StrEnum):
    """Who could read the conversation a run was asked for in, as its front end was told.

    Set where the run is created, from what the front end received about the conversation
    (Slack's ``channel_type``, a slash command's ``channel_name``), never from the shape of
    its id: memory scoping and who may read the goal follow it.
    """

    DIRECT = "direct"
    """A direct message with airlock: the requester's alone."""
    PRIVATE = "private"
    """A private channel or group DM, or a conversation of unknown kind (runs stored before
    the kind was kept): only its members read it."""
    PUBLIC = "public"
    """A channel the front end was not told is private."""
    TERMINAL = "terminal"
    """No conversation: a goal typed on the machine (``airlock run``)."""


class Run(_Record):
    """One goal handed to the agent, from queueing to its final status."""

    id: str = Field(default_factory=lambda: new_id("run"))
    goal: str = Field(min_length=1)
    requester: str = Field(min_length=1)
    channel: str | None = None
    thread_ts: str | None = None
    channel_kind: ChannelKind = ChannelKind.PRIVATE
    """Who could read where the goal was said; private unless its front end says otherwise."""
    status: RunStatus = RunStatus.QUEUED
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    plan: Plan | None = None
    results: dict[str, SubtaskResult] = Field(default_factory=dict)
    spend: Spend = Field(default_factory=Spend)
    attempt: int = Field(default=1, ge=1)
    spent_before: Spend | None = None
    """What earlier attempts used; a retried run's budgets count from its retry."""
    dry_run: bool = False
    error: str | None = None
    private_data_read: bool = False
    """A tool that reads private data (workspace files, command output, memory) was called:
    from then on, outbound calls to hosts not on the egress allow-list need a person."""
    owner: str | None = None
    """The worker that last took the run up (a Redis deployment); None in one process."""
    version: int = Field(default=0, ge=0)
    """Bumped by the store on every save; optimistic concurrency control."""


class PlanSubject(_Record):
    """An approval of a whole plan, asked before anything runs."""

    kind: Literal["plan"] = "plan"
    plan: Plan


class ToolCallSubject(_Record):
    """An approval of one tool call with exactly these arguments."""

    kind: Literal["tool_call"] = "tool_call"
    subtask_id: str
    tool: str
    arguments: dict[str, JsonValue]
    tool_use_id: str | None = None
    preview: str | None = None
    possibly_partial: bool = False
    """Asked again after a restart: an earlier attempt may have started."""
    original_arguments: dict[str, JsonValue] | None = None
    """The arguments the model asked for, once an approver has edited them."""
    earlier_copy_ended: bool | None = None
    """With ``possibly_partial``: whether the processes the earlier attempt started were
    confirmed ended before asking again (None: it started none that airlock knows of)."""

    @property
    def partial_note(self) -> str:
        """What an approver is told of an earlier attempt of this call (when possibly partial)."""
        said = "Asked again: an earlier attempt may have run partly before a restart."
        if self.earlier_copy_ended is None:
            return said
        if self.earlier_copy_ended:
            return f"{said} The earlier copy was confirmed ended: nothing of it still runs."
        return (f"{said} airlock could NOT confirm that the earlier copy ended:"
                " it may still be running.")  # fmt: skip


Subject: TypeAlias = Annotated[PlanSubject | ToolCallSubject, Field(discriminator="kind")]


class ApprovalStatus(StrEnum):
    """Where an approval request stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    """An approver's edit made the call riskier: it is asked again as a new request."""


class DecisionKind(StrEnum):
    """What a human said."""

    APPROVE = "approve"
    APPROVE_FOR_RUN = "approve_for_run"
    REJECT = "reject"
    EDIT = "edit"


class Decision(_Record):
    """One human's answer to an approval request."""

    kind: DecisionKind
    by: str = Field(min_length=1)
    at: datetime = Field(default_factory=utcnow)
    reason: str | None = None
    edited_arguments: dict[str, JsonValue] | None = None
    edited_risk: RiskLevel | None = None
    """The risk of the call with the edited arguments, worked out by the decision path (never
    taken from the caller); above the request's risk, the edit supersedes the request."""
    as_admin: bool = False
    """The decider acted with admin authority, which settles a quorum alone."""

    @model_validator(mode="after")
    def _edit_has_arguments(self) -> Decision:
        if (self.kind is DecisionKind.EDIT) != (self.edited_arguments is not None):
            raise ValueError("edited_arguments go with an edit decision, and only with one")
        if self.edited_risk is not None and self.kind is not DecisionKind.EDIT:
            raise ValueError("edited_risk goes with an edit decision only")
        return self


class Precedent(_Record):
    """A past decision on a similar call, shown to whoever decides this one."""

    outcome: str
    """approved, rejected, edited, expired or cancelled."""
    tool: str
    call: str
    """The call as it was asked, shortened."""
    by: str | None = None
    at: datetime
    reason: str | None = None


class Approval(_Record):
    """A persisted request for a human decision, bound to a digest of its subject."""

    id: str = Field(default_factory=lambda: new_id("apr"))
    run_id: str
    subject: Subject
    risk: RiskLevel
    requester: str | None = None
    requested_at: datetime = Field(default_factory=utcnow)
    deadline: datetime | None = None
    required_approvals: int = Field(default=1, ge=1)
    decisions: list[Decision] = Field(default_factory=list)
    status: ApprovalStatus = ApprovalStatus.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    consumed_at: datetime | None = None
    approvers: list[str] | None = None
    """Who may decide at this escalation hop (user or group ids); None: the configured approvers."""
    hop: int = 0
    """Escalation hops taken so far."""
    precedents: list[Precedent] = Field(default_factory=list)
    """Similar past decisions in the same scope, most similar first (from memory)."""
    grantable: bool = False
    """Whether approve-for-this-run may be offered: the tool declares its later calls
    foreseeable from this one (never for CRITICAL, secrets or egress after a private read)."""
    digest: str = ""

    @model_validator(mode="after")
    def _bind_digest(self) -> Approval:
        self.digest = subject_digest(self.run_id, self.subject)
        return self


def subject_digest(run_id: str, subject: PlanSubject | ToolCallSubject) -> str:
    """SHA-256 over the canonical JSON of exactly what an approval approves."""
    if isinstance(subject, PlanSubject):
        bound: dict[str, JsonValue] = {"run": run_id, "plan": subject.plan.model_dump(mode="json")}
    else:
        bound = {
            "run": run_id,
            "subtask": subject.subtask_id,
            "tool": subject.tool,
            "arguments": subject.arguments,
        }
    return hashlib.sha256(canonical_json(bound).encode()).hexdigest()


class Concluded(_Record):
    """This decision settled the approval."""

    kind: Literal["concluded"] = "concluded"
    approval: Approval


class Counted(_Record):
    """The approve was recorded; more are needed for the quorum."""

    kind: Literal["counted"] = "counted"
    approval: Approval
    approvals_needed: int


class Duplicate(_Record):
    """This person had already approved these arguments; nothing changed."""

    kind: Literal["duplicate"] = "duplicate"
    approval: Approval


class AlreadyDecided(_Record):
    """Someone decided first; nothing changed."""

    kind: Literal["already_decided"] = "already_decided"
    approval: Approval

    @property
    def decided_by(self) -> str | None:
        """Who settled it."""
        return self.approval.decided_by


DecisionOutcome: TypeAlias = Annotated[
    Concluded | Counted | Duplicate | AlreadyDecided, Field(discriminator="kind")
]


class HaltState(_Record):
    """The global halt flag: while set, no new run starts."""

    halted: bool
    by: str | None = None
    reason: str | None = None
    at: datetime = Field(default_factory=utcnow)


class ApprovalDecided(_Record):
    """Signal: an approval reached a conclusion (or moved toward one)."""

    kind: Literal["approval_decided"] = "approval_decided"
    approval_id: str
    run_id: str
    _settled: Approval | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, settled: Approval) -> ApprovalDecided:
        """The signal that ``settled`` (as the store returned it, concluded) was settled."""
        signal = cls(approval_id=settled.id, run_id=settled.run_id)
        signal._settled = settled
        return signal

    @property
    def settled(self) -> Approval | None:
        """The approval as its conclusion left it, in the process that concluded it (a
        subscriber there is handed this very object); None from another process: a private
        attribute is neither sent nor parsed, so no signal on the wire can claim it.

        Current for what a settled notice shows: a concluded approval's status, decider and
        decisions never change again (the first conclusive decision wins); only its use,
        later, which the notice does not show."""
        return self._settled


class RunKilled(_Record):
    """Signal: stop this run now."""

    kind: Literal["run_killed"] = "run_killed"
    run_id: str
    by: str
    reason: str | None = None


class HaltChanged(_Record):
    """Signal: the global halt was set or lifted."""

    kind: Literal["halt_changed"] = "halt_changed"
    halted: bool
    by: str


class QuestionAnswered(_Record):
    """Signal: someone replied in the thread where a run asked a question.

    The reply reaches the front end that serves Slack; the question waits in whichever
    process runs the run (a worker).
    """

    kind: Literal["question_answered"] = "question_answered"
    run_id: str
    channel: str
    thread_ts: str
    text: str


class MessageSubject(StrEnum):
    """What a remembered message is about."""

    APPROVAL = "approval"
    RUN = "run"


class MessagePurpose(StrEnum):
    """What a remembered message shows; each belongs to one kind of subject."""

    APPROVAL_REQUEST = "approval_request"
    """The request, with its buttons, in the run's thread."""
    APPROVAL_COPY = "approval_copy"
    """Its copy in the approval channel."""
    APPROVAL_DM = "approval_dm"
    """Its copy in one approver's direct message."""
    RUN_STATUS = "run_status"
    """The run's status line, edited as the run moves."""

    @property
    def subject(self) -> MessageSubject:
        """The kind of subject a message of this purpose is about."""
        return MessageSubject.RUN if self is MessagePurpose.RUN_STATUS else MessageSubject.APPROVAL


_CONVERSATION_ID = r"^[A-Z0-9]{2,40}$"
"""A conversation's id as chat services give it (Slack's: ``C…``, ``G…``, ``D…``)."""
_MESSAGE_TS = r"^[0-9]{1,12}\.[0-9]{1,9}$"
"""A message's id in its conversation (Slack's ``ts``: seconds and a sequence)."""


class MessageLocation(BaseModel):
    """Where a message airlock posted about a run or an approval is, to edit it later.

    Read back from the store and used to edit a message, so a stored value that is not a
    conversation id and a message ts, or whose purpose is not about its subject, is refused
    on the way in (a forged row cannot send an edit anywhere else).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: MessageSubject
    subject_id: str = Field(min_length=1, max_length=200)
    purpose: MessagePurpose
    channel: str = Field(pattern=_CONVERSATION_ID)
    ts: str = Field(pattern=_MESSAGE_TS)

    @model_validator(mode="after")
    def _purpose_fits_subject(self) -> MessageLocation:
        if self.purpose.subject is not self.subject:
            raise ValueError(f"a {self.purpose} message is not about a {self.subject}")
        return self


Signal: TypeAlias = Annotated[
    ApprovalDecided | RunKilled | HaltChanged | QuestionAnswered, Field(discriminator="kind")
]


class AuditKind(StrEnum):
    """What an audit event records: every kind airlock writes, in one place.

    Stored as its text; trails written by other versions may hold kinds not listed here.
    """

    # A run's life
    PLAN_CREATED = "plan_created"
    RUN_CLAIMED = "run_claimed"
    RUN_REFUSED = "run_refused"
    SUBTASK_FINISHED = "subtask_finished"
    RUN_FINISHED = "run_finished"
    RUN_KILLED = "run_killed"
    RUN_RETRIED = "run_retried"
    # The model
    LLM_CALL = "llm_call"
    LLM_ERROR = "llm_error"
    # Tools
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    TOOL_REFUSED = "tool_refused"
    TOOL_RESULT_REUSED = "tool_result_reused"
    TOOL_OUTCOME_UNKNOWN = "tool_outcome_unknown"
    TOOL_PROCESS_STARTED = "tool_process_started"
    TOOL_PROCESS_ENDED = "tool_process_ended"
    INJECTION_SUSPECTED = "injection_suspected"
    # Approvals
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_REASKED = "approval_reasked"
    APPROVAL_DECIDED = "approval_decided"
    APPROVAL_SUPERSEDED = "approval_superseded"
    APPROVAL_GRANTED_FOR_RUN = "approval_granted_for_run"
    APPROVAL_KEPT = "approval_kept"
    APPROVAL_EXPIRED = "approval_expired"
    APPROVAL_CANCELLED = "approval_cancelled"
    APPROVAL_ESCALATED = "approval_escalated"
    APPROVAL_UNDELIVERABLE = "approval_undeliverable"
    DECISION_REFUSED = "decision_refused"
    # People operating airlock
    KILL_REFUSED = "kill_refused"
    RETRY_REFUSED = "retry_refused"
    KILL_ALL = "kill_all"
    HALT = "halt"
    RESUME = "resume"
    MEMORY_ADDED = "memory_added"
    MEMORY_FORGOTTEN = "memory_forgotten"
    ANSWER_FEEDBACK = "answer_feedback"
    ANSWER_FEEDBACK_REFUSED = "answer_feedback_refused"


class AuditEvent(_Record):
    """One entry of a run's append-only, chained audit trail.

    ``seq``, ``prev_hash``, ``hash`` and ``key_id`` are set by the Store when it appends:
    ``hash`` is an HMAC-SHA256 under the audit key named by ``key_id``
    (:mod:`agent_core.audit.chain`), or plain SHA-256 when ``key_id`` is empty.
    """

    id: str = Field(default_factory=lambda: new_id("evt"))
    run_id: str
    kind: str = Field(min_length=1)
    actor: str = Field(min_length=1)
    at: datetime = Field(default_factory=utcnow)
    data: dict[str, JsonValue] = Field(default_factory=dict)
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""
    key_id: str = ""

    def chained(self, *, seq: int, prev_hash: str) -> AuditEvent:
        """This event as the ``seq``-th of its run, after the one hashed ``prev_hash``,
        unkeyed: SHA-256 over everything but the hash (how trails were written before
        they were keyed, and how a store without a key writes them).
        """
        update = {"seq": seq, "prev_hash": prev_hash, "hash": "", "key_id": ""}
        event = self.model_copy(update=update)
        body = event.model_dump(mode="json", exclude={"hash", "key_id"})
        event.hash = hashlib.sha256(canonical_json(body).encode()).hexdigest()
        return event
