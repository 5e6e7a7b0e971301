"""OpenTelemetry spans and Prometheus metrics: what airlock reports about its own work.

Spans (tracer ``airlock``): ``airlock.run`` holds ``airlock.plan`` and ``airlock.subtask``;
under them are ``chat {model}`` (one model call, with the GenAI semantic-convention
attributes), ``execute_tool {tool}`` and ``airlock.approval_wait``. Each call of
:meth:`~agent_core.runs.orchestrator.Orchestrator.execute` is one run span, so a parked run that is
resumed, in this process or another, starts a new one (``airlock.run.resumed``). An approval
wait spans a park and a resume, so its span is drawn afterwards, from the approval's own
request and decision times.

Spans leave the process only when :func:`configure_tracing` found ``OTEL_EXPORTER_OTLP_ENDPOINT``;
otherwise the OpenTelemetry API's no-op tracer makes each span a few microseconds of nothing.
String attributes go through :func:`~agent_core.logs.redact`; prompts, tool arguments and
outputs never go into spans.

Metrics (prometheus-client, default registry, so ``/metrics`` serves them) are the
``airlock_*`` objects of :mod:`agent_core.telemetry._metrics`, each recorded at the one place
its event happens.
"""

from agent_core.telemetry._llm import ObservedLLM
from agent_core.telemetry._metrics import (
    active_runs,
    approval_settled,
    enable_metrics,
    queue_depth,
    run_finished,
    run_killed,
    worker_event,
)
from agent_core.telemetry._spans import (
    approval_waited,
    configure_tracing,
    plan_span,
    run_span,
    subtask_result,
    subtask_span,
    tool_call,
    use_tracer_provider,
)

__all__ = [
    "ObservedLLM",
    "active_runs",
    "approval_settled",
    "approval_waited",
    "configure_tracing",
    "enable_metrics",
    "plan_span",
    "queue_depth",
    "run_finished",
    "run_killed",
    "run_span",
    "subtask_result",
    "subtask_span",
    "tool_call",
    "use_tracer_provider",
    "worker_event",
]
