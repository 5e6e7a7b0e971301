"""The Prometheus metrics, on the default registry (``/metrics`` serves it), and their recorders.

Each recorder is called at the one place its event happens; the benchmark switches them off
to price them.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from agent_core.llm import LLMResponse, ModelTier
from agent_core.models import Approval, RunStatus

RUNS = Counter("airlock_runs", "Runs that reached a final status, by that status.", ["status"])
ACTIVE_RUNS = Gauge(
    "airlock_active_runs", "Runs working in this process now (parked ones are not)."
)
LLM_CALLS = Counter(
    "airlock_llm_calls",
    "Model calls, by model, tier and outcome (ok, error).",
    ["model", "tier", "outcome"],
)
LLM_TOKENS = Counter(
    "airlock_llm_tokens",
    "Tokens of model calls, by model and kind (input: uncached, output, cache_write, cache_read).",
    ["model", "kind"],
)
LLM_COST = Counter("airlock_llm_cost_usd", "Dollars model calls cost, by model.", ["model"])
MODEL_SECONDS = Histogram(
    "airlock_model_call_seconds",
    "How long model calls took (the SDK's retries and a fallback call included), by the model"
    " asked for and outcome (ok, overloaded, rate_limited, timeout, error).",
    ["model", "outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
)
TOOL_CALLS = Counter(
    "airlock_tool_calls", "Tool calls run, by tool and outcome (ok, error).", ["tool", "outcome"]
)
TOOL_SECONDS = Histogram(
    "airlock_tool_duration_seconds",
    "How long tool calls took, by tool.",
    ["tool"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
APPROVAL_WAIT = Histogram(
    "airlock_approval_wait_seconds",
    "From an approval's request to its decision, by risk.",
    ["risk"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400),
)
APPROVALS = Counter(
    "airlock_approvals",
    "Approvals settled, by outcome (approved, rejected, expired, cancelled) and risk.",
    ["outcome", "risk"],
)
ANSWER_FEEDBACK = Counter(
    "airlock_answer_feedback",
    "Feedback on answers by the person who asked (positive or negative), once per run each.",
    ["value"],
)
KILLS = Counter("airlock_kills", "Runs killed by a person (kill, kill all, halt).")
HOLDS = Counter(
    "airlock_worker_runs",
    "Runs a worker took (read: from the queue; claimed: from a worker that stopped answering),"
    " handed over on shutdown, or lost (its lease went to another worker).",
    ["event"],
)
QUEUE = Gauge(
    "airlock_queue_runs",
    "Runs on the shared queue (Redis): waiting for a worker, or held by one; as a worker last"
    " looked.",
    ["state"],
)


@dataclass(kw_only=True)
class _Switch:
    on: bool = True


_metrics = _Switch()


def enable_metrics(on: bool) -> None:
    """Record metrics (the default) or not; the benchmark turns them off to price them."""
    _metrics.on = on


def run_finished(status: RunStatus) -> None:
    """Count a run this process moved to the final ``status``."""
    if _metrics.on:
        RUNS.labels(status.value).inc()


def answer_feedback(value: str) -> None:
    """Count a ``positive`` or ``negative`` feedback on an answer."""
    if _metrics.on:
        ANSWER_FEEDBACK.labels(value).inc()


def run_killed() -> None:
    """Count a kill, and the end of its run as ``killed``."""
    if _metrics.on:
        KILLS.inc()
        RUNS.labels(RunStatus.KILLED.value).inc()


def worker_event(event: str) -> None:
    """Count a run a worker ``read``, ``claimed``, ``handed_over`` or ``lost``."""
    if _metrics.on:
        HOLDS.labels(event).inc()


def queue_depth(waiting: int, working: int) -> None:
    """The shared queue's size, as a worker's last sweep saw it."""
    if _metrics.on:
        QUEUE.labels("waiting").set(waiting)
        QUEUE.labels("working").set(working)


def active_runs(change: int) -> None:
    """Add ``change`` (1 when a run starts working here, -1 when it stops) to the gauge."""
    # Never switched off: an inc without its dec would skew the gauge for good.
    ACTIVE_RUNS.inc(change)


def approval_settled(approval: Approval) -> None:
    """Count an approval that reached its final status (approved, rejected, expired, cancelled)."""
    if _metrics.on:
        APPROVALS.labels(approval.status.value, approval.risk.value).inc()


def approval_wait(approval: Approval, seconds: float) -> None:
    """Observe how long a decided approval waited."""
    if _metrics.on:
        APPROVAL_WAIT.labels(approval.risk.value).observe(max(seconds, 0.0))


def tool_ran(tool: str, *, failed: bool, seconds: float) -> None:
    """Count one tool call and observe its duration."""
    if _metrics.on:
        TOOL_CALLS.labels(tool, "error" if failed else "ok").inc()
        TOOL_SECONDS.labels(tool).observe(seconds)


def model_called(model: str, outcome: str, seconds: float) -> None:
    """Observe how long one call to ``model`` took, and how it ended."""
    if _metrics.on:
        MODEL_SECONDS.labels(model, outcome).observe(seconds)


def enabled() -> bool:
    """Whether metrics are being recorded (the benchmark switches them off)."""
    return _metrics.on


def llm_failed(model: str, tier: ModelTier) -> None:
    """Count a model call that failed for good."""
    if _metrics.on:
        LLM_CALLS.labels(model, tier.value, "error").inc()


def llm_answered(tier: ModelTier, response: LLMResponse) -> None:
    """Count a model call, its tokens by kind and its cost, under the model that answered."""
    if not _metrics.on:
        return
    model, usage = response.model, response.usage
    LLM_CALLS.labels(model, tier.value, "ok").inc()
    LLM_TOKENS.labels(model, "input").inc(usage.input_tokens)
    LLM_TOKENS.labels(model, "output").inc(usage.output_tokens)
    LLM_TOKENS.labels(model, "cache_write").inc(usage.cache_write_tokens)
    LLM_TOKENS.labels(model, "cache_read").inc(usage.cache_read_tokens)
    LLM_COST.labels(model).inc(usage.cost_usd)
