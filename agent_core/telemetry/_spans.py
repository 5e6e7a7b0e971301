"""airlock's spans: the tracer, its OTLP set-up, and one helper per kind of span."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from agent_core.logs import redact
from agent_core.models import (
    Approval,
    PlanSubject,
    RiskLevel,
    Run,
    RunStatus,
    Subtask,
    SubtaskResult,
)
from agent_core.runs.stops import AwaitingDecision
from agent_core.telemetry import _metrics

if TYPE_CHECKING:
    from agent_core.config import Settings
    from agent_core.tools import Tool

TRACER = "airlock"

_MAX_TEXT = 300
"""Longest string attribute or status description: reasons, not documents."""

_FAILED = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.BUDGET_EXCEEDED)


@dataclass(kw_only=True)
class _Tracing:
    tracer: Tracer
    """The API's proxy tracer follows the global provider once one is set."""


_tracing = _Tracing(tracer=trace.get_tracer(TRACER))


def use_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Send airlock's spans to ``provider``; None goes back to the global one (the default).

    For tests and benchmarks: OpenTelemetry lets the global provider be set only once.
    """
    _tracing.tracer = (provider or trace.get_tracer_provider()).get_tracer(TRACER)


def configure_tracing(settings: Settings) -> Callable[[], None]:
    """Export spans over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; return the shutdown.

    The SDK provider (batching, service name ``OTEL_SERVICE_NAME``) becomes the process's
    global one, so the anthropic SDK's and MCP's own spans join airlock's traces. The exporter
    reads the other ``OTEL_EXPORTER_OTLP_*`` variables (headers, timeout, compression) itself.
    Nothing is installed without an endpoint, or when the process already has a provider (a
    host such as ``opentelemetry-instrument`` set one up). The shutdown flushes what is
    pending and blocks, so entry points run it in a thread.
    """
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint is None or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return _nothing
    # Imported here: a process that exports nothing never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.otel_service_name}))
    # The variable names the collector's base URL; the traces path is the spec's.
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider.shutdown


def _nothing() -> None:
    return None


@contextmanager
def span(name: str, kind: SpanKind = SpanKind.INTERNAL) -> Iterator[Span]:
    """A current span whose end tells a signal (parked, cancelled) from an error."""
    with _tracing.tracer.start_as_current_span(
        name, kind=kind, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except AwaitingDecision:
            current.set_attribute("airlock.parked", True)
            raise
        except asyncio.CancelledError:
            current.set_attribute("airlock.cancelled", True)
            raise
        except Exception as error:
            # Not record_exception: its message and stack trace could carry what we keep out.
            current.set_attribute("error.type", type(error).__qualname__)
            current.set_status(Status(StatusCode.ERROR, text(str(error))))
            raise


@contextmanager
def run_span(run: Run, latest: Callable[[], Run]) -> Iterator[None]:
    """The span of one pass at ``run``; ``latest`` gives the run as it ends, for its outcome.

    The pass is also a run working in this process, in the ``airlock_active_runs`` gauge.
    """
    with span("airlock.run") as current:
        if current.is_recording():
            resumed = run.status is not RunStatus.QUEUED
            attributes: dict[str, AttributeValue | None] = {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": TRACER,
                "airlock.run.id": run.id,
                "airlock.run.attempt": run.attempt,
                "airlock.run.resumed": resumed,
                "airlock.run.resumed_from": run.status.value if resumed else None,
                "airlock.run.requester": run.requester,
                "airlock.run.dry_run": run.dry_run,
            }
            current.set_attributes(clean(attributes))
        _metrics.active_runs(1)
        try:
            yield
        finally:
            _metrics.active_runs(-1)
            if current.is_recording():
                _run_outcome(current, latest())


def _run_outcome(current: Span, run: Run) -> None:
    spend = run.spend
    tokens = (
        spend.input_tokens
        + spend.output_tokens
        + spend.cache_write_tokens
        + spend.cache_read_tokens
    )
    current.set_attributes(
        {
            "airlock.run.status": run.status.value,
            "airlock.run.cost_usd": spend.cost_usd,
            "airlock.run.llm_calls": spend.llm_calls,
            "airlock.run.tokens": tokens,
        }
    )
    if run.plan is not None:
        current.set_attribute("airlock.plan.subtasks", len(run.plan.subtasks))
        current.set_attribute("airlock.plan.risk", run.plan.risk.value)
    if run.status in _FAILED:
        current.set_status(Status(StatusCode.ERROR, text(run.error or run.status.value)))


@contextmanager
def plan_span(run: Run) -> Iterator[None]:
    """The span of planning ``run``; its model calls, repairs included, are its children."""
    with span("airlock.plan") as current:
        current.set_attribute("airlock.run.id", run.id)
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


async def tool_call(
    work: Callable[[], Awaitable[dict[str, Any]]],
    *,
    run: Run,
    tool: Tool,
    risk: RiskLevel,
    call_id: str,
    approval_id: str | None = None,
    approved_by: str | None = None,
) -> dict[str, Any]:
    """Await ``work`` (one tool call, giving its ``tool_result`` block) in a span; count it."""
    started = time.perf_counter()
    with span(f"execute_tool {tool.name}") as current:
        if current.is_recording():
            attributes: dict[str, AttributeValue | None] = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool.name,
                "gen_ai.tool.call.id": call_id,
                "airlock.run.id": run.id,
                "airlock.tool.risk": risk.value,
                "airlock.approval.id": approval_id,
                "airlock.approver": approved_by,
            }
            current.set_attributes(clean(attributes))
        result = await work()
        failed = bool(result.get("is_error"))
        if failed:
            current.set_attribute("error.type", "tool_error")
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
    waited = _tracing.tracer.start_span(
        "airlock.approval_wait", start_time=_ns(approval.requested_at)
    )
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
