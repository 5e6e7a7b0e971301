"""OpenTelemetry spans and metrics, and Prometheus metrics: what airlock reports about its work.

Spans (tracer ``airlock``) follow the OpenTelemetry GenAI semantic conventions (the version
and the names are in :mod:`agent_core.telemetry._conventions`): ``invoke_agent airlock``, one
per pass at a run, holds ``plan airlock`` and ``airlock.subtask``; under them are
``chat {model}`` (one model call), ``execute_tool {tool}`` and ``airlock.approval_wait``. Each
call of :meth:`~agent_core.runs.orchestrator.Orchestrator.execute` is one pass, so a parked run
that is resumed, in this process or another, starts a new one (``airlock.run.resumed``); all
passes share the run's ``gen_ai.conversation.id`` (its Slack thread, or its id). An approval
wait spans a park and a resume, so its span is drawn afterwards, from the approval's own
request and decision times.

Spans and the GenAI client histograms (``gen_ai.client.operation.duration``,
``gen_ai.client.token.usage``) leave the process only when :func:`configure_tracing` found
``OTEL_EXPORTER_OTLP_ENDPOINT``; otherwise the OpenTelemetry API's no-op providers make each
a few microseconds of nothing. String attributes go through :func:`~agent_core.logs.redact`;
prompts, tool arguments and outputs never go into spans.

Prometheus metrics (prometheus-client, default registry, so ``/metrics`` serves them) are the
``airlock_*`` objects of :mod:`agent_core.telemetry._metrics`, each recorded at the one place
its event happens.
"""

from agent_core.telemetry._llm import ObservedCalls
from agent_core.telemetry._metrics import (
    active_runs,
    answer_feedback,
    approval_settled,
    enable_metrics,
    queue_depth,
    run_finished,
    run_killed,
    worker_event,
)
from agent_core.telemetry._providers import (
    configure_tracing,
    use_meter_provider,
    use_tracer_provider,
)
from agent_core.telemetry._spans import (
    approval_waited,
    conversation_id,
    plan_span,
    run_span,
    subtask_drained,
    subtask_parked,
    subtask_result,
    subtask_span,
    tool_call,
)

__all__ = [
    "ObservedCalls",
    "active_runs",
    "answer_feedback",
    "approval_settled",
    "approval_waited",
    "configure_tracing",
    "conversation_id",
    "enable_metrics",
    "plan_span",
    "queue_depth",
    "run_finished",
    "run_killed",
    "run_span",
    "subtask_drained",
    "subtask_parked",
    "subtask_result",
    "subtask_span",
    "tool_call",
    "use_meter_provider",
    "use_tracer_provider",
    "worker_event",
]
