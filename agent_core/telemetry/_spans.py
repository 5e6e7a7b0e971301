"""airlock's spans: one helper per kind of span, on the GenAI conventions where one applies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING

from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from agent_core.errors import LLMError
from agent_core.logs import redact
from agent_core.models import (
    Approval,
    PlanSubject,
    RiskLevel,
    Run,
    RunStatus,
    Spend,
    Subtask,
    SubtaskResult,
)
from agent_core.telemetry import _conventions as gen_ai
from agent_core.telemetry import _metrics
from agent_core.telemetry._providers import tracer

if TYPE_CHECKING:
    from agent_core.llm.messages import ToolResultBlock
    from agent_core.toolcalls import ToolCall
    from agent_core.tools import Tool

_MAX_TEXT = 300
"""Longest string attribute or status description: reasons, not documents."""

_FAILED = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.BUDGET_EXCEEDED)

_conversation: ContextVar[str | None] = ContextVar("airlock_conversation", default=None)
"""The ``gen_ai.conversation.id`` of the run being worked on in this context (and the tasks
it starts), for the spans and metrics of its model and tool calls."""


def conversation_id(run: Run) -> str:
    """The conversation a run belongs to: its Slack thread, or the run itself at the terminal.

    Resumed passes of one run, in any process, share it; so do runs started in one thread.
    """
    if run.channel is None:
        return run.id
    return f"{run.channel}:{run.thread_ts}" if run.thread_ts else run.channel


def current_conversation() -> str | None:
    """The conversation of the run this code works for, if any."""
    return _conversation.get()


@contextmanager
def span(name: str, kind: SpanKind = SpanKind.INTERNAL) -> Iterator[Span]:
    """A current span whose end tells a cancellation from an error."""
    with tracer().start_as_current_span(
        name, kind=kind, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except asyncio.CancelledError:
            current.set_attribute("airlock.cancelled", True)
            raise
        except Exception as error:
            # Not record_exception: its message and stack trace could carry what we keep out.
            current.set_attribute(gen_ai.ERROR_TYPE, error_type(error))
            current.set_status(Status(StatusCode.ERROR, text(str(error))))
            raise


def error_type(error: BaseException) -> str:
    """``error.type`` of ``error``: a failed model call's code (``"529"``), else its class."""
    if isinstance(error, LLMError) and error.code:
        return error.code
    return type(error).__qualname__


@contextmanager
def run_span(run: Run, latest: Callable[[], Run]) -> Iterator[None]:
    """The ``invoke_agent airlock`` span of one pass at ``run``; ``latest`` gives the run as it
    ends, for its outcome. The pass is also a run working in this process, in the
    ``airlock_active_runs`` gauge, and its conversation is current for what it calls.
    """
    spent = run.spend.model_copy()
    conversation = _conversation.set(conversation_id(run))
    try:
        with span(f"invoke_agent {gen_ai.AGENT}") as current:
            if current.is_recording():
                current.set_attributes(_run_attributes(run))
            _metrics.active_runs(1)
            try:
                yield
            finally:
                _metrics.active_runs(-1)
                if current.is_recording():
                    _run_outcome(current, latest(), spent=spent)
    finally:
        _conversation.reset(conversation)


def _run_attributes(run: Run) -> dict[str, AttributeValue]:
    resumed = run.status is not RunStatus.QUEUED
    return clean(
        {
            gen_ai.OPERATION: "invoke_agent",
            gen_ai.PROVIDER_NAME: gen_ai.PROVIDER,
            gen_ai.AGENT_NAME: gen_ai.AGENT,
            gen_ai.CONVERSATION: conversation_id(run),
            "airlock.run.id": run.id,
            "airlock.run.attempt": run.attempt,
            "airlock.run.resumed": resumed,
            "airlock.run.resumed_from": run.status.value if resumed else None,
            "airlock.run.requester": run.requester,
            "airlock.run.dry_run": run.dry_run,
        }
    )


def _run_outcome(current: Span, run: Run, *, spent: Spend) -> None:
    """The end of a pass: what its model calls used (``spent`` is what the run had used before
    it), the run's status and its whole cost so far."""
    spend = run.spend
    inputs = _all_input(spend) - _all_input(spent)
    current.set_attributes(
        {
            gen_ai.INPUT_TOKENS: max(inputs, 0),
            gen_ai.OUTPUT_TOKENS: max(spend.output_tokens - spent.output_tokens, 0),
            "airlock.run.status": run.status.value,
            "airlock.run.cost_usd": spend.cost_usd,
            "airlock.run.llm_calls": spend.llm_calls,
        }
    )
    if run.plan is not None:
        current.set_attribute("airlock.plan.subtasks", len(run.plan.subtasks))
        current.set_attribute("airlock.plan.risk", run.plan.risk.value)
    if run.status in _FAILED:
        current.set_attribute(gen_ai.ERROR_TYPE, run.status.value)
        current.set_status(Status(StatusCode.ERROR, text(run.error or run.status.value)))


def _all_input(spend: Spend) -> int:
    """Input tokens as the conventions count them: cache reads and writes included."""
    return spend.input_tokens + spend.cache_write_tokens + spend.cache_read_tokens


@contextmanager
def plan_span(run: Run) -> Iterator[None]:
    """The ``plan airlock`` span of planning ``run``; its model calls, repairs included, are
    its children (the conventions' ``plan`` operation)."""
    with span(f"plan {gen_ai.AGENT}") as current:
        if current.is_recording():
            attributes: dict[str, AttributeValue | None] = {
                gen_ai.OPERATION: "plan",
                gen_ai.AGENT_NAME: gen_ai.AGENT,
                gen_ai.CONVERSATION: conversation_id(run),
                "airlock.run.id": run.id,
            }
            current.set_attributes(clean(attributes))
        yield


@contextmanager
def subtask_span(run: Run, subtask: Subtask, *, resumed: bool) -> Iterator[Span]:
    """The span of one executor pass at ``subtask``; note its end with :func:`subtask_result`."""
    with span("airlock.subtask") as current:
        if current.is_recording():
            attributes: dict[str, AttributeValue | None] = {
                "airlock.run.id": run.id,
                "airlock.subtask.id": subtask.id,
                "airlock.subtask.risk": subtask.risk_level.value,
                "airlock.subtask.resumed": resumed,
            }
            current.set_attributes(clean(attributes))
        yield current


def subtask_result(current: Span, result: SubtaskResult) -> SubtaskResult:
    """``result``, noted on its subtask's span."""
    if current.is_recording():
        current.set_attribute("airlock.subtask.status", result.status)
        if result.status == "failed":
            current.set_status(Status(StatusCode.ERROR, text(result.error or "failed")))
    return result


def subtask_parked(current: Span, approval_id: str) -> None:
    """Note on its subtask's span that the pass stopped to wait for ``approval_id``: a
    signal, not an error (the run resumes once a person decides)."""
    if current.is_recording():
        current.set_attributes({"airlock.parked": True, "airlock.approval.id": approval_id})


def subtask_drained(current: Span) -> None:
    """Note on its subtask's span that the pass stopped at a checkpoint for a shutdown: a
    signal, not an error (the next process resumes it there)."""
    if current.is_recording():
        current.set_attribute("airlock.drained", True)


async def tool_call(
    work: Callable[[], Awaitable[ToolResultBlock]],
    *,
    run: Run,
    tool: Tool,
    risk: RiskLevel,
    call: ToolCall,
    approval_id: str | None = None,
    approved_by: str | None = None,
) -> ToolResultBlock:
    """Await ``work`` (one tool call, giving its ``tool_result`` block) in a span; count it."""
    started = time.perf_counter()
    with span(f"execute_tool {tool.name}") as current:
        if current.is_recording():
            attributes: dict[str, AttributeValue | None] = {
                gen_ai.OPERATION: "execute_tool",
                "gen_ai.tool.name": tool.name,
                "gen_ai.tool.type": gen_ai.TOOL_TYPE,
                "gen_ai.tool.call.id": call.id,
                gen_ai.CONVERSATION: conversation_id(run),
                "airlock.run.id": run.id,
                "airlock.tool.risk": risk.value,
                "airlock.approval.id": approval_id,
                "airlock.approver": approved_by,
            }
            current.set_attributes(clean(attributes))
        result = await work()
        failed = bool(result.get("is_error"))
        if failed:
            current.set_attribute(gen_ai.ERROR_TYPE, "tool_error")
            current.set_status(Status(StatusCode.ERROR))
    _metrics.tool_ran(tool.name, failed=failed, seconds=time.perf_counter() - started)
    return result


def approval_waited(approval: Approval) -> None:
    """A decided approval, met by the run it gates: its wait as a span and in the histogram.

    The span starts when the approval was asked for and ends when it was decided, under
    whatever span is current (the subtask's, or the run's for a plan).
    """
    decided = approval.decided_at
    if decided is None:
        return
    _metrics.approval_wait(approval, (decided - approval.requested_at).total_seconds())
    waited = tracer().start_span("airlock.approval_wait", start_time=_ns(approval.requested_at))
    if waited.is_recording():
        subject = approval.subject
        attributes: dict[str, AttributeValue | None] = {
            "airlock.run.id": approval.run_id,
            "airlock.approval.id": approval.id,
            "airlock.approval.risk": approval.risk.value,
            "airlock.approval.outcome": approval.status.value,
            "airlock.approver": approval.decided_by,
            "airlock.approval.subject": subject.kind,
            "airlock.approval.hop": approval.hop,
            "airlock.approval.decisions": len(approval.decisions),
            "gen_ai.tool.name": None if isinstance(subject, PlanSubject) else subject.tool,
        }
        waited.set_attributes(clean(attributes))
    waited.end(end_time=_ns(decided))


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)


def text(value: str) -> str:
    """``value`` redacted and cut, fit for a span."""
    return redact(value)[:_MAX_TEXT]


def clean(attributes: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    """``attributes`` without the Nones, every string redacted and cut."""
    return {
        key: text(value) if isinstance(value, str) else value
        for key, value in attributes.items()
        if value is not None
    }
