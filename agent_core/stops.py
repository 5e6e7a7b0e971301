"""Signals that end a run early. They steer control flow; they are not errors.

Each carries the final status the orchestrator records and a reason for people. A run that
waits for a person does not end: that is a value, the gate's
:class:`~agent_core.approvals.gate.Pending`, which the orchestrator records as a parked run.
"""

from __future__ import annotations

from agent_core.models import RunStatus

__all__ = ["BudgetExceeded", "RunStop"]


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
