"""What a run's thread says as it goes: the status line edited in place, the plan, and the
notice of a MEDIUM call. Model text in them goes through :mod:`bot.slack.render`; what is too long
is cut by :mod:`bot.slack.fit`, with a marker."""

from __future__ import annotations

import re
from collections.abc import Callable

from agent_core import (
    ApprovalNeeded,
    Plan,
    PlanReady,
    RunEvent,
    RunFinished,
    RunQueued,
    RunStatus,
    StepStarted,
    ToolNotice,
)
from bot.slack.blocks import plan_lines
from bot.slack.fit import cut, cut_middle, marker, split
from bot.slack.render import code_block, inert, inert_code, json_text, mention, plural

__all__ = ["finished_text", "plan_messages", "status_line", "tool_notice"]

_PLAN_MESSAGE = 3500  # a message's text holds 4,000 characters
_NOTICE_HEAD, _NOTICE_TAIL = 2400, 1000
_NAMED = 20
_PLAN_DECIDED = re.compile(
    r"plan (rejected|expired|cancelled|superseded) by ([UW][A-Z0-9]{2,20})(?=:|$)"
)


def status_line(event: RunEvent) -> str | None:
    """The run's status after ``event``, for the message edited in place; None: unchanged."""
    run = event.run
    line = _status_line(event)
    if line is not None and run.attempt > 1:
        line += f" (attempt {run.attempt})"
    return line


def _status_line(event: RunEvent) -> str | None:
    run = f"`{inert_code(event.run.id)}`"
    if isinstance(event, RunQueued):
        if event.position == 0:
            return f":arrow_forward: {run} starting…"
        return f":busstop: {run} waiting for a free slot: number {event.position} in line"
    if isinstance(event, PlanReady):
        return f":clipboard: {run} planned {plural(len(event.plan.subtasks), 'step')}"
    if isinstance(event, StepStarted):
        step = cut(inert_code(event.subtask_id), 200)
        return f":gear: {run} step {event.index} of {event.total}: `{step}`"
    if isinstance(event, ApprovalNeeded):
        named = event.approval.approvers or []
        who = ", ".join(mention(i) for i in named[:_NAMED]) or "an approver"
        return f":hourglass_flowing_sand: {run} waiting for approval from {who}"
    if isinstance(event, RunFinished):
        mark = ":white_check_mark:" if event.status is RunStatus.COMPLETED else ":no_entry:"
        return f"{mark} {run} {event.status.value}"
    return None


def plan_messages(plan: Plan) -> list[str]:
    """The whole plan, numbered, over as many messages as it needs."""
    numbered = [f"{i}. {line[2:]}" for i, line in enumerate(plan_lines(plan), start=1)]
    return split("*Plan*\n" + "\n".join(numbered), _PLAN_MESSAGE)


def tool_notice(event: ToolNotice) -> str:
    """The MEDIUM notice: the whole call, or its head and tail and what was cut between."""
    tool = cut(inert_code(event.tool), 200)
    title = f":information_source: running `{tool}` ({event.risk.value})"
    call = inert_code(json_text(event.arguments))
    parts = cut_middle(call, _NOTICE_HEAD, _NOTICE_TAIL)
    if parts is None:
        return f"{title}\n{code_block(call)}"
    head, hidden, tail = parts
    return f"{title}\n{code_block(head)}\n_{marker(hidden)} not shown_\n{code_block(tail)}"


def finished_text(status: RunStatus, result: str, render: Callable[[str], str] = inert) -> str:
    """``result`` made inert by ``render``; a plan decision's decider (a user id the gate put
    first, before any reason a person typed) shown as a mention, e.g. "plan rejected by
    <@W111>: …"."""
    decided = _PLAN_DECIDED.match(result) if status is RunStatus.REJECTED else None
    if decided is None:
        return render(result)
    return f"plan {decided[1]} by {mention(decided[2])}{render(result[decided.end() :])}"
