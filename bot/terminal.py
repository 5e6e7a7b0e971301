"""The terminal as an OperatorChannel: `airlock run` shows the run and asks at the keyboard."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import assert_never

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from agent_core.approvals import Refused
from agent_core.channel import (
    ApprovalEscalated,
    ApprovalNeeded,
    ApprovalReminder,
    ApprovalSettled,
    BudgetWarning,
    PlanReady,
    RunEvent,
    RunFinished,
    RunQueued,
    StepFinished,
    StepStarted,
    ToolNotice,
)
from agent_core.logs import redact
from agent_core.memory.notes import describe_precedents
from agent_core.models import (
    Approval,
    Decision,
    DecisionKind,
    Plan,
    PlanSubject,
    RiskLevel,
    Run,
    RunStatus,
    ToolCallSubject,
)

__all__ = ["TerminalChannel"]

RISK_STYLE = {
    RiskLevel.LOW: "green",
    RiskLevel.MEDIUM: "yellow",
    RiskLevel.HIGH: "bold red",
    RiskLevel.CRITICAL: "bold white on red",
}


@dataclass(kw_only=True)
class TerminalChannel:
    """Prints events with rich and asks approvals as y/n questions at the keyboard.

    Answers go through ``decide`` (the DecisionService), like a Slack click would, so a
    decision made elsewhere (``airlock approve`` in another shell) settles the request too,
    and the pending question is withdrawn. With ``auto_approve`` every request is approved
    without asking (for scripts), recorded under ``operator``.
    """

    operator: str
    """Who decides at this keyboard, e.g. ``local:alice``."""
    console: Console = field(default_factory=Console)
    auto_approve: bool = False
    decide: Callable[[str, Decision], Awaitable[object]] | None = None
    """Where answers go: ``DecisionService.decide``."""
    _prompts: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _reader: asyncio.StreamReader | None = None

    async def notify(self, event: RunEvent) -> None:
        if isinstance(event, RunQueued):
            if event.position:
                self.console.print(f"[yellow]⏳ number {event.position} in line for a free slot[/]")
        elif isinstance(event, PlanReady):
            self.console.print(plan_table(event.plan))
        elif isinstance(event, StepStarted):
            self.console.print(f"[bold]▶ step {event.index}/{event.total}[/] {event.subtask_id}")
        elif isinstance(event, StepFinished):
            mark = "[green]✓[/]" if event.status == "completed" else f"[red]✗ {event.status}[/]"
            self.console.print(f"  {mark} {event.subtask_id}: {_short(redact(event.summary))}")
        elif isinstance(event, ToolNotice):
            arguments = redact(json.dumps(event.arguments))
            self.console.print(f"  [yellow]• {event.tool}[/] {_short(arguments)}")
        elif isinstance(event, ApprovalNeeded):
            self.console.print(approval_panel(event.approval))
        elif isinstance(event, ApprovalSettled):
            self._withdraw(event.approval.id)
            who = event.approval.decided_by or "nobody"
            self.console.print(f"  approval {event.approval.id}: {event.approval.status} by {who}")
        elif isinstance(event, ApprovalReminder):
            self.console.print(f"[yellow]⏰ approval {event.approval.id} is still waiting[/]")
        elif isinstance(event, ApprovalEscalated):
            to = ", ".join(event.approval.approvers or [])
            self.console.print(f"[yellow]↑ approval {event.approval.id} escalated to {to}[/]")
        elif isinstance(event, BudgetWarning):
            self.console.print(
                f"[yellow]⚠ {event.budget} budget: {event.used:g} of {event.limit:g} used[/]"
            )
        elif isinstance(event, RunFinished):
            self.console.print(finished_panel(event.run, event.status, event.result))
        else:
            assert_never(event)

    async def request_decision(self, approval: Approval) -> None:
        if approval.id not in self._prompts:
            self._prompts[approval.id] = asyncio.create_task(self._answer(approval))

    async def _answer(self, approval: Approval) -> None:
        try:
            try:
                decision = await self._ask_decision()
            except EOFError:
                self.console.print(
                    f"no keyboard here: decide elsewhere, e.g. `airlock approve {approval.id}`"
                )
                return
            if self.decide is None:
                raise RuntimeError("TerminalChannel.decide is not connected")
            outcome = await self.decide(approval.id, decision)
            if isinstance(outcome, Refused):
                self.console.print(f"[red]not accepted: {outcome.reason}[/]")
        finally:
            self._prompts.pop(approval.id, None)

    async def _ask_decision(self) -> Decision:
        if self.auto_approve:
            return Decision(kind=DecisionKind.APPROVE, by=self.operator)
        answer = ""
        while answer not in ("y", "n"):
            answer = (await self._line("Approve? [y/n] ")).strip().lower()
        if answer == "y":
            return Decision(kind=DecisionKind.APPROVE, by=self.operator)
        reason = (await self._line("Reason (optional): ")).strip()
        return Decision(kind=DecisionKind.REJECT, by=self.operator, reason=reason or None)

    def _withdraw(self, approval_id: str) -> None:
        task = self._prompts.pop(approval_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def ask(self, run: Run, question: str) -> str:
        self.console.print(f"[bold cyan]? {redact(question)}[/]")
        return (await self._line("> ")).strip()

    async def members_of(self, group: str) -> set[str]:
        return set()  # the terminal knows no user groups

    async def _line(self, prompt: str) -> str:
        """One line from stdin, read without blocking the loop (so it can be withdrawn)."""
        self.console.print(prompt, end="")
        if self._reader is None:
            reader = asyncio.StreamReader()
            loop = asyncio.get_running_loop()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            self._reader = reader
        line = await self._reader.readline()
        if not line:
            raise EOFError("stdin closed while a question was open")
        return line.decode(errors="replace")


def plan_table(plan: Plan) -> Table:
    """The plan as a table: step, what, tools, after, risk."""
    table = Table(title="Plan", title_justify="left")
    for column in ("step", "what", "tools", "after", "risk"):
        table.add_column(column)
    for subtask in plan.subtasks:
        risk = subtask.risk_level
        table.add_row(
            subtask.id,
            redact(subtask.description),
            ", ".join(subtask.required_tools) or "-",
            ", ".join(subtask.depends_on) or "-",
            f"[{RISK_STYLE[risk]}]{risk.value}[/]",
        )
    return table


def approval_panel(approval: Approval) -> Panel:
    """What is asked: the tool call with its arguments (and preview), or the plan."""
    subject = approval.subject
    if isinstance(subject, ToolCallSubject):
        body = f"[bold]{subject.tool}[/] {redact(json.dumps(subject.arguments, indent=2))}"
        if subject.preview:
            body += f"\n\n{redact(subject.preview)}"
        if subject.possibly_partial:
            body += f"\n\n[bold yellow]⚠ {escape(subject.partial_note)}[/]"
        if approval.precedents:
            lines = describe_precedents(approval.precedents, approval.requested_at)
            body += "\n\n[bold]Similar decisions before[/]\n" + "\n".join(
                f"• {escape(redact(line))}" for line in lines
            )
    elif isinstance(subject, PlanSubject):
        body = f"the plan ({len(subject.plan.subtasks)} steps) before anything runs"
    else:
        assert_never(subject)
    style = RISK_STYLE[approval.risk]
    title = f"[{style}]{approval.risk.value} risk[/]: approval {approval.id}"
    return Panel(body, title=title, title_align="left")


def finished_panel(run: Run, status: RunStatus, result: str) -> Panel:
    """The run's end: status, result or reason, and what it cost."""
    good = status is RunStatus.COMPLETED
    spend = run.spend
    read = spend.input_tokens + spend.cache_read_tokens + spend.cache_write_tokens
    cost = (
        f"{spend.llm_calls} model calls, {read} input / {spend.output_tokens} output tokens,"
        f" ${spend.cost_usd:.4f}"
    )
    return Panel(
        f"{redact(result)}\n\n[dim]{cost}[/]",
        title=f"[{'green' if good else 'red'}]{status.value}[/] {run.id}",
        title_align="left",
    )


def _short(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
