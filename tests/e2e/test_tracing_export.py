"""`airlock run` as a real process exporting spans and metrics over OTLP/HTTP to a collector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.testing.redis_server import free_port
from tests.e2e.test_run_cli import KEY, airlock_run

pytestmark = pytest.mark.processes


@dataclass(kw_only=True)
class Collector:
    """A minimal OTLP/HTTP receiver: what arrived at /v1/traces and /v1/metrics, decoded."""

    url: str
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    metric_requests: list[ExportMetricsServiceRequest] = field(default_factory=list)

    def metrics(self) -> list[Metric]:
        return [
            metric
            for request in self.metric_requests
            for resource in request.resource_metrics
            for scope in resource.scope_metrics
            if scope.scope.name == "airlock"
            for metric in scope.metrics
        ]

    def spans(self) -> list[Span]:
        return [
            span
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]

    def service_names(self) -> set[str]:
        return {
            attribute.value.string_value
            for request in self.requests
            for resource in request.resource_spans
            for attribute in resource.resource.attributes
            if attribute.key == "service.name"
        }


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    port = free_port()
    received = Collector(url=f"http://127.0.0.1:{port}")

    async def traces(request: web.Request) -> web.Response:
        received.requests.append(ExportTraceServiceRequest.FromString(await request.read()))
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def metrics(request: web.Request) -> web.Response:
        received.metric_requests.append(
            ExportMetricsServiceRequest.FromString(await request.read())
        )
        body = ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield received
    finally:
        await runner.cleanup()


async def test_a_run_exports_its_trace_when_an_endpoint_is_set(
    tmp_path: Path, collector: Collector
) -> None:
    plan = {
        "subtasks": [
            {"id": "s1", "description": "write the note", "required_tools": ["write_file"],
             "depends_on": [], "risk_level": "high"},
        ]
    }  # fmt: skip
    script = [
        tool_use_reply("submit_plan", plan),
        tool_use_reply("write_file", {"path": "note.txt", "content": "hello"}),
        text_reply("wrote note.txt"),
    ]
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_SERVICE_NAME": "airlock-e2e"}
    async with AnthropicStandIn(api_key=KEY, script=script) as server:
        code, _, err = await airlock_run(
            "--yes", "leave a note", server=server, data=tmp_path / "data", extra=otel
        )
    assert code == 0, err

    # Everything arrived before the process exited: the shutdown flushes the batch.
    spans = collector.spans()
    assert collector.service_names() == {"airlock-e2e"}
    names = {span.name for span in spans}
    assert {
        "invoke_agent airlock", "plan airlock", "airlock.subtask", "airlock.approval_wait",
        "chat claude-opus-4-7", "chat claude-sonnet-4-6", "execute_tool write_file",
    } <= names  # fmt: skip
    # The anthropic SDK's own span of each HTTP call joins the trace under airlock's call.
    chats = {span.span_id for span in spans if span.name.startswith("chat ")}
    sdk = [span for span in spans if span.name == "anthropic.messages.create"]
    assert len(sdk) == len(chats) == 3
    assert all(span.parent_span_id in chats for span in sdk)

    # The GenAI client histograms went out on shutdown too, one data point per model.
    exported = {metric.name: metric for metric in collector.metrics()}
    duration = exported["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    assert sum(point.count for point in duration.histogram.data_points) == 3
    assert exported["gen_ai.client.token.usage"].unit == "{token}"
    kinds = {
        attribute.value.string_value
        for point in exported["gen_ai.client.token.usage"].histogram.data_points
        for attribute in point.attributes
        if attribute.key == "gen_ai.token.type"
    }
    assert kinds == {"input", "output"}
