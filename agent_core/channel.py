"""How the agent core talks to people: the OperatorChannel protocol and the events it sends.

Slack (``bot/``), the terminal (``airlock run``) and a recording fake (tests) implement it,
so one run logic serves all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

from agent_core.models import Approval, JsonValue, Plan, RiskLevel, Run, RunStatus, Spend

__all__ = [
    "ApprovalEscalated",
    "ApprovalNeeded",
    "ApprovalReminder",
    "ApprovalSettled",
    "BudgetWarning",
    "OperatorChannel",
    "PlanReady",
    "RunEvent",
    "RunFinished",
    "RunQueued",
    "StepFinished",
    "StepStarted",
    "ToolNotice",
]


@dataclass(kw_only=True, frozen=True)
class RunQueued:
    """The run waits for a free slot, ``position`` in line (1 is next); 0 once its turn came.

    Sent when the run joins the line and whenever its place changes.
    """

    run: Run
    position: int
    kind: Literal["run_queued"] = "run_queued"


@dataclass(kw_only=True, frozen=True)
class PlanReady:
    """The planner produced a valid plan."""

    run: Run
    plan: Plan
    kind: Literal["plan_ready"] = "plan_ready"


@dataclass(kw_only=True, frozen=True)
class StepStarted:
    """A subtask started (``index`` of ``total``, counting from 1)."""

    run: Run
    subtask_id: str
    index: int
    total: int
    kind: Literal["step_started"] = "step_started"


@dataclass(kw_only=True, frozen=True)
class StepFinished:
    """A subtask ended, well or not."""

    run: Run
    subtask_id: str
    status: Literal["completed", "failed", "skipped", "rejected"]
    summary: str
    kind: Literal["step_finished"] = "step_finished"


@dataclass(kw_only=True, frozen=True)
class ToolNotice:
    """A MEDIUM-risk tool call is about to run without waiting (people are told, not asked)."""

    run: Run
    tool: str
    arguments: dict[str, JsonValue]
    risk: RiskLevel
    kind: Literal["tool_notice"] = "tool_notice"


@dataclass(kw_only=True, frozen=True)
class ApprovalNeeded:
    """The run waits for a decision on ``approval``."""

    run: Run
    approval: Approval
    kind: Literal["approval_needed"] = "approval_needed"


@dataclass(kw_only=True, frozen=True)
class ApprovalSettled:
    """An approval ended (decided, expired or cancelled): its request can show the outcome."""

    run: Run
    approval: Approval
    kind: Literal["approval_settled"] = "approval_settled"


@dataclass(kw_only=True, frozen=True)
class ApprovalReminder:
    """Half of an approval's time has passed without a decision."""

    run: Run
    approval: Approval
    kind: Literal["approval_reminder"] = "approval_reminder"


@dataclass(kw_only=True, frozen=True)
class ApprovalEscalated:
    """Nobody decided in time; the approval went to the next approvers (``approval.approvers``)."""

    run: Run
    approval: Approval
    kind: Literal["approval_escalated"] = "approval_escalated"


@dataclass(kw_only=True, frozen=True)
class BudgetWarning:
    """A budget passed its warning threshold (``used`` of ``limit``, in ``unit``)."""

    run: Run
    budget: Literal["llm_calls", "tokens", "usd"]
    used: float
    limit: float
    spend: Spend
    kind: Literal["budget_warning"] = "budget_warning"


@dataclass(kw_only=True, frozen=True)
class RunFinished:
    """The run reached a final status; ``result`` is the answer or the reason it stopped."""

    run: Run
    status: RunStatus
    result: str
    kind: Literal["run_finished"] = "run_finished"


RunEvent: TypeAlias = (
    RunQueued
    | PlanReady
    | StepStarted
    | StepFinished
    | ToolNotice
    | ApprovalNeeded
    | ApprovalSettled
    | ApprovalReminder
    | ApprovalEscalated
    | BudgetWarning
    | RunFinished
)


class OperatorChannel(Protocol):
    """Where a run's people are: it shows them events, asks for decisions and questions."""

    async def notify(self, event: RunEvent) -> None:
        """Show ``event``; never blocks on a person."""

    async def request_decision(self, approval: Approval) -> None:
        """Ask the approvers of ``approval`` (buttons, a prompt) and return at once.

        Their answers come back through the
        :class:`~agent_core.approvals.service.DecisionService`, from any process.
        """

    async def ask(self, run: Run, question: str) -> str:
        """Ask the person who started ``run`` and return their answer."""

    async def members_of(self, group: str) -> set[str]:
        """The user ids in the user group ``group``."""
