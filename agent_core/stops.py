"""Signals that end a run early. They steer control flow; they are not errors.

Each carries the final status the orchestrator records and a reason for people.
"""

from __future__ import annotations

from agent_core.models import RunStatus

__all__ = ["AwaitingDecision", "BudgetExceeded", "RunStop"]


class RunStop(Exception):
    """Signal: stop the run now with ``status``; ``reason`` says why."""

    status: RunStatus = RunStatus.FAILED

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BudgetExceeded(RunStop):
    """Signal: a run budget reached 100 %."""

    status = RunStatus.BUDGET_EXCEEDED

    def __init__(self, budget: str, used: float, limit: float) -> None:
        self.budget = budget
        self.used = used
        self.limit = limit
        super().__init__(f"{budget} budget exhausted: {used:g} of {limit:g}")


class AwaitingDecision(RunStop):
    """Signal: park the run until ``approval_id`` is decided; no coroutine waits for a person.

    The run is checkpointed with status ``awaiting_approval``; a decision, from any process,
    resumes it from the checkpoint.
    """

    status = RunStatus.AWAITING_APPROVAL

    def __init__(self, approval_id: str) -> None:
        self.approval_id = approval_id
        super().__init__(f"waiting for a decision on {approval_id}")
