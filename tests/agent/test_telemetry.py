"""Spans and metrics of real runs: the trace tree, the GenAI attributes, /metrics moving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import anthropic as anthropic_sdk
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent_core import telemetry
from agent_core.approvals import Refused
from agent_core.config import load_settings
from agent_core.errors import ConfigError
from agent_core.llm.anthropic import AnthropicLLM
from agent_core.llm.budget import BudgetLimits
from agent_core.models import RiskLevel, RunStatus
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    fault,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.channel import RecordingChannel
from agent_core.tools import Tool, ToolContext, ToolRegistry
from tests.agent.conftest import API_KEY, Harness, text_tool

Factory = Callable[..., Awaitable[Harness]]
SECRET = "sk-ant-api03-TELEMETRYSECRET0123456789"


@dataclass(kw_only=True)
class Traced:
    """The test's own tracer provider and what it exported."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        return sorted(self.exporter.get_finished_spans(), key=lambda s: s.start_time or 0)

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name.startswith(prefix)]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        return [s for s in self.spans() if s.parent and s.parent.span_id == parent.context.span_id]


@pytest.fixture
def traced() -> Iterator[Traced]:
    """An in-memory exporter behind a provider of the test's own; the global one is untouched."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_tracer_provider(provider)
    try:
        yield Traced(provider=provider, exporter=exporter)
    finally:
        telemetry.use_tracer_provider(None)
        provider.shutdown()


@dataclass(kw_only=True)
class Metered:
    """The test's own meter provider, read on demand."""

    reader: InMemoryMetricReader

    def metrics(self) -> dict[str, Metric]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            metric.name: metric
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            if scope.scope.name == "airlock"
            for metric in scope.metrics
        }

    def points(self, name: str) -> list[HistogramDataPoint]:
        points = list(self.metrics()[name].data.data_points)
        assert all(isinstance(point, HistogramDataPoint) for point in points)
        return points  # type: ignore[return-value]


@pytest.fixture
def metered() -> Iterator[Metered]:
    """An in-memory metric reader behind a meter provider of the test's own."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    telemetry.use_meter_provider(provider)
    try:
        yield Metered(reader=reader)
    finally:
        telemetry.use_meter_provider(None)
        provider.shutdown()


@pytest.fixture
async def llm(anthropic: AnthropicStandIn, traced: Traced) -> AsyncIterator[AnthropicLLM]:
    """The production LLM on the stand-in; the SDK's own spans go to the test's provider too."""
    client = anthropic_sdk.AsyncAnthropic(
        api_key=API_KEY, base_url=anthropic.base_url, max_retries=0, timeout=10,
        open_telemetry={"tracer_provider": traced.provider},
    )  # fmt: skip
    model = AnthropicLLM(
        client=client,
        planner_model="claude-opus-4-7",
        executor_model="claude-sonnet-4-6",
        fast_model="claude-haiku-4-5",
    )
    try:
        yield model
    finally:
        await client.close()


def plan(tools: list[str]) -> Any:
    subtask = {"id": "s1", "description": "do it", "required_tools": tools, "depends_on": [],
               "risk_level": "low"}  # fmt: skip
    return tool_use_reply("submit_plan", {"subtasks": [subtask]})


def approved_restart(server: AnthropicStandIn) -> None:
    """A plan, a HIGH tool call (approved by the channel), then the summary."""
    server.enqueue(plan(["lookup"]), tool_use_reply("restart", {"target": "web"}),
                   text_reply("web restarted"))  # fmt: skip


def ns(moment: datetime | None) -> int:
    assert moment is not None
    return int(moment.timestamp() * 1e9)


def names(spans: list[ReadableSpan]) -> list[str]:
    return [s.name for s in spans]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def server(anthropic: AnthropicStandIn) -> dict[str, Any]:
    """server.address and server.port of the stand-in, as the conventions ask for them."""
    url = urlsplit(anthropic.base_url)
    return {"server.address": url.hostname, "server.port": url.port}


def input_tokens(usage: dict[str, int]) -> int:
    """Every input token of a reply: the conventions count cached ones too; the API does not."""
    return (
        usage["input_tokens"]
        + usage["cache_read_input_tokens"]
        + usage["cache_creation_input_tokens"]
    )


AGENT = {
    "gen_ai.provider.name": "anthropic",
    "gen_ai.agent.name": "airlock",
}


async def test_a_run_is_traced_agent_plan_subtask_chat_tool_and_approval_wait(
    harness: Harness, anthropic: AnthropicStandIn, traced: Traced
) -> None:
    approved_restart(anthropic)
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED, run.error

    # Two passes: the first parks at the HIGH call, the decision resumes the run in a second.
    first, second = traced.named("invoke_agent")
    for agent in (first, second):
        assert agent.name == "invoke_agent airlock" and agent.kind is SpanKind.INTERNAL
        assert attributes(agent).items() >= {
            "gen_ai.operation.name": "invoke_agent", **AGENT,
            # A run from the terminal has no Slack thread: its id is the conversation.
            "gen_ai.conversation.id": run.id, "airlock.run.id": run.id,
        }.items()  # fmt: skip
        assert "airlock.run.tokens" not in attributes(agent)
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["airlock.run.resumed"] is False
    assert first.attributes["airlock.run.status"] == "awaiting_approval"
    assert second.attributes["airlock.run.resumed"] is True
    assert second.attributes["airlock.run.resumed_from"] == "awaiting_approval"
    assert second.attributes["airlock.run.status"] == "completed"
    assert second.attributes["airlock.run.cost_usd"] == pytest.approx(run.spend.cost_usd)
    assert first.parent is None and second.parent is None
    # Each pass carries the tokens of its own model calls, cached input included.
    usage = [reply["usage"] for reply in anthropic.replies]
    assert [first.attributes["gen_ai.usage.input_tokens"],
            second.attributes["gen_ai.usage.input_tokens"]] == [
        input_tokens(usage[0]) + input_tokens(usage[1]), input_tokens(usage[2]),
    ]  # fmt: skip
    assert first.attributes["gen_ai.usage.output_tokens"] == (
        usage[0]["output_tokens"] + usage[1]["output_tokens"]
    )

    plan_span, parked = traced.children(first)
    assert names([plan_span, parked]) == ["plan airlock", "airlock.subtask"]
    assert plan_span.kind is SpanKind.INTERNAL
    assert attributes(plan_span).items() >= {
        "gen_ai.operation.name": "plan", "gen_ai.agent.name": "airlock",
        "gen_ai.conversation.id": run.id, "airlock.run.id": run.id,
    }.items()  # fmt: skip
    [planner_call] = traced.children(plan_span)
    assert planner_call.name == "chat claude-opus-4-7"
    assert names(traced.children(planner_call)) == ["anthropic.messages.create"]
    assert names(traced.children(parked)) == ["chat claude-sonnet-4-6"]
    assert parked.attributes is not None and parked.attributes["airlock.parked"] is True
    # Waiting for a person is a signal, not an error, and the span says for which request.
    assert parked.attributes["airlock.approval.id"] == harness.channel.asked[0].id
    assert parked.status.status_code is StatusCode.UNSET
    assert "error.type" not in parked.attributes

    [resumed] = traced.children(second)
    assert resumed.attributes is not None and resumed.attributes["airlock.subtask.resumed"]
    assert resumed.attributes["airlock.subtask.status"] == "completed"
    wait, tool, summary = traced.children(resumed)
    assert names([wait, tool, summary]) == [
        "airlock.approval_wait", "execute_tool restart", "chat claude-sonnet-4-6",
    ]  # fmt: skip

    approval = await harness.store.get_approval(harness.channel.asked[0].id)
    assert (wait.start_time, wait.end_time) == (ns(approval.requested_at), ns(approval.decided_at))
    assert wait.attributes == {
        "airlock.run.id": run.id, "airlock.approval.id": approval.id,
        "airlock.approval.risk": "high", "airlock.approval.outcome": "approved",
        "airlock.approver": "local:tests", "airlock.approval.subject": "tool_call",
        "airlock.approval.hop": 0, "airlock.approval.decisions": 1,
        "gen_ai.tool.name": "restart",
    }  # fmt: skip
    tool_use = anthropic.replies[1]["content"][0]
    assert tool.kind is SpanKind.INTERNAL
    assert tool.attributes == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "restart",
        "gen_ai.tool.type": "function", "gen_ai.tool.call.id": tool_use["id"],
        "gen_ai.conversation.id": run.id, "airlock.run.id": run.id,
        "airlock.tool.risk": "high", "airlock.approval.id": approval.id,
        "airlock.approver": "local:tests",
    }  # fmt: skip
    assert tool.status.status_code is StatusCode.UNSET


async def test_a_subtask_stopped_for_a_shutdown_is_marked_drained_not_failed(
    harness_factory: Factory, anthropic: AnthropicStandIn, traced: Traced
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def migrate(arguments: dict[str, Any], context: ToolContext) -> str:
        started.set()
        await release.wait()
        return "migrated"

    registry = ToolRegistry([Tool(name="migrate", description="Migrate.",
                                  input_schema={"type": "object"}, risk=RiskLevel.LOW,
                                  handler=migrate)])  # fmt: skip
    harness = await harness_factory(registry=registry)
    plan = {"subtasks": [{"id": "s1", "description": "migrate", "required_tools": ["migrate"],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    anthropic.enqueue(tool_use_reply("submit_plan", plan), tool_use_reply("migrate", {}))
    run = await harness.start()
    async with asyncio.timeout(10):
        await started.wait()
    stopping = asyncio.create_task(harness.runner.stop(grace_seconds=10))
    await harness.orchestrator.draining.wait()
    release.set()
    async with asyncio.timeout(10):
        await stopping
    assert (await harness.store.get_run(run.id)).status is RunStatus.RUNNING

    [subtask] = traced.named("airlock.subtask")
    assert subtask.attributes is not None and subtask.attributes["airlock.drained"] is True
    assert subtask.status.status_code is StatusCode.UNSET
    assert "error.type" not in subtask.attributes and "airlock.parked" not in subtask.attributes
    [agent] = traced.named("invoke_agent")
    assert agent.status.status_code is StatusCode.UNSET


async def test_a_slack_run_s_conversation_is_its_thread(
    harness: Harness, anthropic: AnthropicStandIn, traced: Traced
) -> None:
    approved_restart(anthropic)
    run = await harness.run(channel="C0OPS", thread_ts="1595926230.000100")
    assert run.status is RunStatus.COMPLETED, run.error

    ours = [s for s in traced.spans() if s.instrumentation_scope.name == "airlock"]
    conversational = [s for s in ours if attributes(s).get("gen_ai.operation.name")]
    assert {s.name.split(" ")[0] for s in conversational} == {
        "invoke_agent", "plan", "chat", "execute_tool",
    }  # fmt: skip
    for span in conversational:
        assert attributes(span)["gen_ai.conversation.id"] == "C0OPS:1595926230.000100", span.name


async def test_each_model_call_carries_the_gen_ai_attributes_the_api_reported(
    harness: Harness, anthropic: AnthropicStandIn, traced: Traced
) -> None:
    approved_restart(anthropic)
    run = await harness.run()

    calls = traced.named("chat ")
    assert len(calls) == len(anthropic.replies) == 3
    tiers = [("planner", "claude-opus-4-7"), ("executor", "claude-sonnet-4-6"),
             ("executor", "claude-sonnet-4-6")]  # fmt: skip
    for call, reply, (tier, model) in zip(calls, anthropic.replies, tiers, strict=True):
        usage = reply["usage"]
        cached = usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
        found = attributes(call)
        assert found.pop("airlock.cost_usd") > 0
        assert call.kind is SpanKind.CLIENT
        assert found == {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": model, "gen_ai.request.max_tokens": 4096,
            **server(anthropic), "gen_ai.conversation.id": run.id, "airlock.llm.tier": tier,
            "gen_ai.response.id": reply["id"], "gen_ai.response.model": reply["model"],
            "gen_ai.response.finish_reasons": (reply["stop_reason"],),
            # The conventions count cached input too; the API's input_tokens does not.
            "gen_ai.usage.input_tokens": usage["input_tokens"] + cached,
            "gen_ai.usage.output_tokens": usage["output_tokens"],
            "gen_ai.usage.cache_read.input_tokens": usage["cache_read_input_tokens"],
            "gen_ai.usage.cache_creation.input_tokens": usage["cache_creation_input_tokens"],
        }  # fmt: skip
        [sdk_call] = traced.children(call)
        assert sdk_call.attributes is not None
        assert sdk_call.attributes["gen_ai.usage.input_tokens"] == usage["input_tokens"] + cached
    assert [c.attributes["gen_ai.response.finish_reasons"] for c in calls if c.attributes] == [
        ("tool_use",), ("tool_use",), ("end_turn",),
    ]  # fmt: skip
    assert anthropic.replies[2]["usage"]["cache_read_input_tokens"] > 0
    total = sum(float(c.attributes["airlock.cost_usd"]) for c in calls if c.attributes)
    assert total == pytest.approx(run.spend.cost_usd)


async def test_spans_hold_no_secret_and_no_prompt(
    harness_factory: Factory, anthropic: AnthropicStandIn, traced: Traced
) -> None:
    harness = await harness_factory(max_plan_retries=0)
    anthropic.enqueue(plan([SECRET]))  # the model names a "tool" that is a key
    goal = f"rotate the deploy key {SECRET} on the web tier"
    run = await harness.run(goal)
    # The failure names the key; the stored run has it masked, and so must every span.
    assert run.status is RunStatus.FAILED and run.error is not None
    assert "unknown tool 'sk-ant-[redacted]'" in run.error and SECRET not in run.error

    [run_span] = traced.named("invoke_agent")
    assert run_span.status.status_code is StatusCode.ERROR
    assert run_span.status.description is not None
    assert "sk-ant-[redacted]" in run_span.status.description
    assert attributes(run_span)["error.type"] == "failed"
    exported = "\n".join(s.to_json() for s in traced.spans())
    assert "TELEMETRYSECRET" not in exported
    assert "rotate the deploy key" not in exported


async def test_a_call_the_run_s_budget_refuses_is_neither_traced_nor_audited(
    harness_factory: Factory, anthropic: AnthropicStandIn, traced: Traced
) -> None:
    """The budget is the run's outermost middleware: the refused call reaches nothing below."""
    harness = await harness_factory(budget=BudgetLimits(llm_calls=1, tokens=10**9, usd=100.0))
    anthropic.enqueue(plan(["lookup"]))
    run = await harness.run()
    assert run.status is RunStatus.BUDGET_EXCEEDED
    assert run.error == "llm_calls budget exhausted: 1 of 1"
    assert names(traced.named("chat ")) == ["chat claude-opus-4-7"]
    kinds = [e.kind for e in await harness.store.list_audit(run.id)]
    assert (kinds.count("llm_call"), kinds.count("llm_error")) == (1, 0)
    assert len(anthropic.message_requests()) == 1


async def test_the_call_that_crosses_the_budget_is_traced_and_audited(
    harness_factory: Factory, anthropic: AnthropicStandIn, traced: Traced
) -> None:
    """Audit and telemetry sit inside the budget: a call made is recorded, even the one that
    stops the run."""
    harness = await harness_factory(budget=BudgetLimits(llm_calls=50, tokens=1, usd=100.0))
    anthropic.enqueue(plan(["lookup"]))
    run = await harness.run()
    assert run.status is RunStatus.BUDGET_EXCEEDED and run.plan is None
    [call] = traced.named("chat ")
    assert attributes(call)["gen_ai.response.finish_reasons"] == ("tool_use",)
    [audited] = [e for e in await harness.store.list_audit(run.id) if e.kind == "llm_call"]
    assert audited.data["usage"]["output_tokens"] == run.spend.output_tokens > 0


def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample /metrics would serve, parsed back."""
    samples = {}
    for family in text_string_to_metric_families(generate_latest().decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


@dataclass(kw_only=True)
class Moved:
    before: dict[tuple[str, frozenset[tuple[str, str]]], float]
    after: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def __call__(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return self.after.get(key, 0.0) - self.before.get(key, 0.0)


async def test_metrics_move_by_what_a_run_did(
    harness_factory: Factory, anthropic: AnthropicStandIn, traced: Traced
) -> None:
    active: list[float] = []

    def restart(arguments: dict[str, Any]) -> str:
        active.append(scrape()[("airlock_active_runs", frozenset())])
        return "restarted"

    registry = ToolRegistry([text_tool("lookup", RiskLevel.LOW, lambda arguments: "fine"),
                             text_tool("restart", RiskLevel.HIGH, restart)])  # fmt: skip
    harness = await harness_factory(registry=registry)
    before = scrape()
    approved_restart(anthropic)
    run = await harness.run()
    moved = Moved(before=before, after=scrape())

    assert moved("airlock_runs_total", status="completed") == 1
    # Working while its tool ran; not once it ended.
    assert active == [before[("airlock_active_runs", frozenset())] + 1]
    assert moved("airlock_active_runs") == 0
    model = {"planner": anthropic.replies[0]["model"], "executor": anthropic.replies[1]["model"]}
    assert (
        moved("airlock_llm_calls_total", model=model["planner"], tier="planner", outcome="ok") == 1
    )
    assert (
        moved("airlock_llm_calls_total", model=model["executor"], tier="executor", outcome="ok")
        == 2
    )
    usage = [reply["usage"] for reply in anthropic.replies]
    kinds = {
        "input": "input_tokens",
        "output": "output_tokens",
        "cache_write": "cache_creation_input_tokens",
        "cache_read": "cache_read_input_tokens",
    }
    for kind, field in kinds.items():
        total = sum(
            moved("airlock_llm_tokens_total", model=m, kind=kind) for m in set(model.values())
        )
        assert total == sum(u[field] for u in usage), kind
    cost = sum(moved("airlock_llm_cost_usd_total", model=m) for m in set(model.values()))
    assert cost == pytest.approx(run.spend.cost_usd) and cost > 0
    assert moved("airlock_tool_calls_total", tool="restart", outcome="ok") == 1
    assert moved("airlock_tool_duration_seconds_count", tool="restart") == 1
    assert moved("airlock_approval_wait_seconds_count", risk="high") == 1
    # A click answered in milliseconds lands in the first bucket.
    assert moved("airlock_approval_wait_seconds_bucket", risk="high", le="1.0") == 1
    assert moved("airlock_approvals_total", outcome="approved", risk="high") == 1
    # Model latency, by the model asked for: what an alert on a slow model watches.
    assert moved("airlock_model_call_seconds_count", model="claude-opus-4-7", outcome="ok") == 1
    assert moved("airlock_model_call_seconds_count", model="claude-sonnet-4-6", outcome="ok") == 2
    assert moved("airlock_model_call_seconds_bucket", model="claude-sonnet-4-6", outcome="ok",
                 le="+Inf") == 2  # fmt: skip


DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip


async def test_model_calls_are_recorded_in_the_gen_ai_client_histograms(
    harness: Harness, anthropic: AnthropicStandIn, traced: Traced, metered: Metered
) -> None:
    approved_restart(anthropic)
    run = await harness.run()
    assert run.status is RunStatus.COMPLETED, run.error

    metrics = metered.metrics()
    assert metrics["gen_ai.client.operation.duration"].unit == "s"
    assert metrics["gen_ai.client.token.usage"].unit == "{token}"
    durations = metered.points("gen_ai.client.operation.duration")
    assert sum(point.count for point in durations) == 3
    common = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
              **server(anthropic)}  # fmt: skip
    for point in durations:
        assert tuple(point.explicit_bounds) == DURATION_BUCKETS
        assert dict(point.attributes or {}).items() >= common.items()
        assert "error.type" not in (point.attributes or {})
    models = {(p.attributes or {}).get("gen_ai.request.model"): p.count for p in durations}
    assert models == {"claude-opus-4-7": 1, "claude-sonnet-4-6": 2}
    # The span of each call lasted as long as its recorded duration, within its bucket.
    chats = traced.named("chat ")
    assert sum(point.sum for point in durations) == pytest.approx(
        sum(((s.end_time or 0) - (s.start_time or 0)) / 1e9 for s in chats), abs=0.05
    )

    usage = [reply["usage"] for reply in anthropic.replies]
    tokens = metered.points("gen_ai.client.token.usage")
    assert all(tuple(point.explicit_bounds) == TOKEN_BUCKETS for point in tokens)
    by_type: dict[str, float] = {}
    for point in tokens:
        found = dict(point.attributes or {})
        assert found.items() >= common.items()
        kind = str(found["gen_ai.token.type"])
        by_type[kind] = by_type.get(kind, 0) + point.sum
    assert by_type == {
        "input": sum(input_tokens(u) for u in usage),
        "output": sum(u["output_tokens"] for u in usage),
    }


async def test_a_failed_model_call_is_timed_with_its_error_type(
    harness_factory: Factory, anthropic: AnthropicStandIn, traced: Traced, metered: Metered
) -> None:
    harness = await harness_factory(max_plan_retries=0)
    before = scrape()
    anthropic.enqueue(fault(529))  # the SDK does not retry here (max_retries=0)
    run = await harness.run()
    assert run.status is RunStatus.FAILED and "529" in (run.error or "")
    moved = Moved(before=before, after=scrape())

    [call] = traced.named("chat ")
    assert call.status.status_code is StatusCode.ERROR
    assert attributes(call)["error.type"] == "529"
    [point] = metered.points("gen_ai.client.operation.duration")
    assert dict(point.attributes or {}).items() >= {
        "gen_ai.request.model": "claude-opus-4-7", "error.type": "529",
    }.items()  # fmt: skip
    assert "gen_ai.client.token.usage" not in metered.metrics()
    overloaded = moved("airlock_model_call_seconds_count", model="claude-opus-4-7",
                       outcome="overloaded")  # fmt: skip
    assert overloaded == 1


async def test_metrics_count_a_kill_and_the_approval_it_cancels(
    harness_factory: Factory, anthropic: AnthropicStandIn, traced: Traced
) -> None:
    harness = await harness_factory(channel=RecordingChannel(decider=lambda approval: None))
    anthropic.enqueue(plan(["lookup"]), tool_use_reply("restart", {"target": "web"}))
    before = scrape()
    run = await harness.start()
    assert (await harness.parked(run.id)).status is RunStatus.AWAITING_APPROVAL
    killed = await harness.control.kill(run.id, by="U0ADMIN", reason="wrong ticket")
    assert not isinstance(killed, Refused) and killed.status is RunStatus.KILLED
    moved = Moved(before=before, after=scrape())

    assert moved("airlock_kills_total") == 1
    assert moved("airlock_runs_total", status="killed") == 1
    assert moved("airlock_approvals_total", outcome="cancelled", risk="high") == 1
    assert moved("airlock_approval_wait_seconds_count", risk="high") == 0
    assert moved("airlock_tool_calls_total", tool="restart", outcome="ok") == 0


def test_tracing_stays_off_without_an_endpoint() -> None:
    shutdown = telemetry.configure_tracing(load_settings(None, otel_exporter_otlp_endpoint=None))
    shutdown()
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def test_the_endpoint_must_be_a_url() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(None, otel_exporter_otlp_endpoint="collector:4318")
    [problem] = error.value.problems
    assert problem.startswith("OTEL_EXPORTER_OTLP_ENDPOINT: ")
