"""The terminal as an OperatorChannel: `airlock run` shows the run and asks at the keyboard.

Text a model, a tool or a person wrote is shown as rich ``Text`` (never parsed as markup, so
``[conceal]`` hides nothing and a stray ``[/]`` breaks nothing), with invisible and
direction-changing characters and terminal escapes shown as ``⟨U+…⟩``, and every cut marked
with how much was cut.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import assert_never

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agent_core import (
    Approval,
    ApprovalEscalated,
    ApprovalNeeded,
    ApprovalReminder,
    ApprovalSettled,
    BudgetWarning,
    Decide,
    Decision,
    DecisionKind,
    Plan,
    PlanReady,
    PlanSubject,
    Refused,
    RiskLevel,
    Run,
    RunEvent,
    RunFinished,
    RunQueued,
    RunStatus,
    StepFinished,
    StepStarted,
    ToolCallSubject,
    ToolNotice,
    describe_precedents,
    redact,
)
from bot.cli.status import StatusLine
from bot.slack.fit import marker
from bot.slack.render import visible

__all__ = ["TerminalChannel", "approval_panel", "finished_panel", "plan_table"]

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
    decide: Decide | None = None
    """Where answers go: the decision path (:attr:`ChannelParts.decide`); None for a channel
    that only shows a run (it cannot take an answer)."""
    status: StatusLine = field(default_factory=StatusLine)
    """What the run is doing between events (a spinner on stderr, on a terminal only)."""
    _prompts: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _reader: asyncio.StreamReader | None = None

    async def notify(self, event: RunEvent) -> None:
        self.status.hide()
        self._print(event)
        if (doing := _doing(event)) is not None:
            self.status.show(doing)

    def _print(self, event: RunEvent) -> None:
        out = self.console.print
        if isinstance(event, RunQueued):
            if event.position:
                out(f"[yellow]⏳ number {event.position} in line for a free slot[/]")
        elif isinstance(event, PlanReady):
            out(plan_table(event.plan))
        elif isinstance(event, StepStarted):
            out(Text.assemble((f"▶ step {event.index}/{event.total} ", "bold"),
                              _text(event.subtask_id)))  # fmt: skip
        elif isinstance(event, StepFinished):
            mark = ("✓", "green") if event.status == "completed" else (f"✗ {event.status}", "red")
            out(Text.assemble("  ", mark, " ", _text(event.subtask_id), ": ",
                              _text(_short(event.summary))))  # fmt: skip
        elif isinstance(event, ToolNotice):
            call = _short(json.dumps(event.arguments, ensure_ascii=False), 2000)
            out(Text.assemble(("  • ", "yellow"), (visible(event.tool), "yellow"), " ",
                              _text(call)))  # fmt: skip
        elif isinstance(event, ApprovalNeeded):
            out(approval_panel(event.approval))
        elif isinstance(event, ApprovalSettled):
            self._withdraw(event.approval.id)
            who = event.approval.decided_by or "nobody"
            out(Text(f"  approval {event.approval.id}: {event.approval.status} by {visible(who)}"))
        elif isinstance(event, ApprovalReminder):
            out(f"[yellow]⏰ approval {event.approval.id} is still waiting[/]")
        elif isinstance(event, ApprovalEscalated):
            to = visible(", ".join(event.approval.approvers or []))
            out(Text(f"↑ approval {event.approval.id} escalated to {to}", style="yellow"))
        elif isinstance(event, BudgetWarning):
            out(f"[yellow]⚠ {event.budget} budget: {event.used:g} of {event.limit:g} used[/]")
        elif isinstance(event, RunFinished):
            out(finished_panel(event.run, event.status, event.result))
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
                raise RuntimeError("this TerminalChannel was made without a decision path")
            outcome = await self.decide(approval.id, decision)
            if isinstance(outcome, Refused):
                self.console.print(Text(f"not accepted: {visible(outcome.reason)}", style="red"))
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
        self.status.hide()
        self.console.print(Text(f"? {visible(redact(question))}", style="bold cyan"))
        return (await self._line("> ")).strip()

    async def members_of(self, group: str) -> set[str]:
        return set()  # the terminal knows no user groups

    async def _line(self, prompt: str) -> str:
        """One line from stdin, read without blocking the loop (so it can be withdrawn)."""
        self.status.hide()
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


def _doing(event: RunEvent) -> str | None:
    """What the run does after ``event`` until the next one; None: it waits for a person, or
    it is over."""
    if isinstance(event, RunQueued):
        return "waiting for a free slot"
    if isinstance(event, StepStarted):
        return f"step {event.index}/{event.total}: working"
    if isinstance(event, ApprovalNeeded | RunFinished):
        return None
    return "working"


def plan_table(plan: Plan) -> Table:
    """The plan as a table: step, what, tools, after, risk."""
    table = Table(title="Plan", title_justify="left")
    for column in ("step", "what", "tools", "after", "risk"):
        table.add_column(column)
    for subtask in plan.subtasks:
        risk = subtask.risk_level
        table.add_row(
            _text(subtask.id),
            _text(subtask.description),
            _text(", ".join(subtask.required_tools) or "-"),
            _text(", ".join(subtask.depends_on) or "-"),
            Text(risk.value, style=RISK_STYLE[risk]),
        )
    return table


def approval_panel(approval: Approval) -> Panel:
    """What is asked: the tool call with its arguments (and preview), or the plan."""
    subject = approval.subject
    if isinstance(subject, ToolCallSubject):
        arguments = json.dumps(subject.arguments, indent=2, ensure_ascii=False)
        body = Text.assemble((visible(subject.tool), "bold"), " ", _text(arguments))
        if subject.preview:
            body.append_text(Text.assemble("\n\n", _text(subject.preview)))
        if subject.possibly_partial:
            body.append(f"\n\n⚠ {subject.partial_note}", style="bold yellow")
        if approval.precedents:
            lines = describe_precedents(approval.precedents, approval.requested_at)
            body.append("\n\nSimilar decisions before", style="bold")
            body.append_text(_text("".join(f"\n• {line}" for line in lines)))
    elif isinstance(subject, PlanSubject):
        body = Text(f"the plan ({len(subject.plan.subtasks)} steps) before anything runs")
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
        Text.assemble(_text(result), "\n\n", (cost, "dim")),
        title=f"[{'green' if good else 'red'}]{status.value}[/] {run.id}",
        title_align="left",
    )


def _text(text: str) -> Text:
    """Untrusted ``text`` for the terminal: no markup, secrets masked, every hidden character
    shown."""
    return Text(visible(redact(text)))


def _short(text: str, limit: int = 160) -> str:
    """``text`` on one line, cut to ``limit`` with a marker of how much was cut."""
    line = text.replace("\n", " ")
    if len(line) <= limit:
        return line
    note = f" {marker(len(line) - limit)}"
    return line[: max(limit - len(note), 0)] + note
