"""What tracing, metrics and the audit trail cost on an executor step, against all three off.

    python -m bench.observability [--steps 20] [--runs 20]

One executor (the real one: budgets, the risk gate, the tool loop) runs a subtask of
``--steps`` LOW tool calls, each one model turn plus its tool call, against the Anthropic
stand-in through the real SDK with no model latency, so what is measured is airlock's own
work, the worst case for a ratio. The stand-in and an OTLP/HTTP collector run in a process
of their own, so their CPU is not counted here.

Variants, measured in one run, round-robin so drift hits them all alike:

- off: no tracer provider (the API's no-op one), metrics switched off, no audit;
- tracing: an SDK provider batching spans to the collector over OTLP/HTTP, as
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` sets up, the anthropic SDK's own spans included;
- tracing, no SDK spans: the same without them (``ANTHROPIC_OPEN_TELEMETRY=false``);
- metrics: the Prometheus counters and histograms (the GenAI OpenTelemetry histograms are the
  API's no-op ones, as in a process without ``OTEL_EXPORTER_OTLP_ENDPOINT``);
- audit: ``Executor(audit=Audit(...))`` and the audit middleware (every tool call and model call
  appended to the SQLite store's hash chain);
- all: the three together, the GenAI histograms exported over OTLP/HTTP as well, as an
  endpoint sets up.

The tool-call journal is not audit: it is what a resumed run decides from, so every variant
keeps it (one store write before each tool call and one after), ``off`` included, and the
ratios leave it out.

Reported: median wall and CPU milliseconds per step (CPU includes the exporters' threads;
a tracing run's spans, and its metrics, are flushed before its clock stops, in one export per
run where a server batches up to 512 spans and exports metrics once a minute), and each as a
ratio to ``off``. Also the cost of one no-op span,
which is what tracing costs when it is not configured.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
from aiohttp import web
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from rich.console import Console
from rich.table import Table

from agent_core import telemetry
from agent_core.approvals import ApprovalGate, ApprovalPolicy
from agent_core.audit.trail import Audit, AuditedCalls
from agent_core.llm import LLMResponse, Middleware, ModelTier, Usage, llm_stack
from agent_core.llm.anthropic import AnthropicLLM
from agent_core.llm.budget import Budget, BudgetLimits
from agent_core.models import Plan, Run, Subtask, SubtaskResult
from agent_core.runs.executor import Executor, ExecutorLimits
from agent_core.runs.journal import ToolJournal
from agent_core.store import Store, open_store
from agent_core.telemetry import _metrics
from agent_core.telemetry._spans import span
from agent_core.testing.anthropic_server import AnthropicStandIn
from agent_core.testing.channel import RecordingChannel, approve_all
from agent_core.tools import ToolContext
from bench.executor_step import KEY, MODEL, registry, responder


@dataclass(kw_only=True, frozen=True)
class Variant:
    name: str
    tracing: bool = False
    metrics: bool = False
    audit: bool = False
    sdk_spans: bool = True
    otlp_metrics: bool = False


VARIANTS = [
    Variant(name="off"),
    Variant(name="tracing", tracing=True),
    Variant(name="tracing, no SDK spans", tracing=True, sdk_spans=False),
    Variant(name="metrics", metrics=True),
    Variant(name="audit", audit=True),
    Variant(name="all", tracing=True, metrics=True, audit=True, otlp_metrics=True),
]


@dataclass(kw_only=True)
class Bench:
    """What the variants share: the store, the span pipeline, one SDK client per variant."""

    store: Store
    provider: TracerProvider
    meters: MeterProvider
    standin: str
    folder: Path
    steps: int
    clients: dict[str, anthropic.AsyncAnthropic] = field(default_factory=dict)
    walls: dict[str, list[float]] = field(default_factory=dict)
    cpus: dict[str, list[float]] = field(default_factory=dict)

    def client(self, variant: Variant) -> anthropic.AsyncAnthropic:
        if variant.name not in self.clients:
            # None: what the environment says, which here is the no-op global provider.
            traced: dict[str, Any] | None = None
            if variant.tracing:
                traced = (
                    {"tracer_provider": self.provider} if variant.sdk_spans else {"traces": False}
                )
            self.clients[variant.name] = anthropic.AsyncAnthropic(
                api_key=KEY, base_url=self.standin, max_retries=0,
                open_telemetry=traced,  # type: ignore[arg-type]
            )  # fmt: skip
        return self.clients[variant.name]

    async def once(self, variant: Variant, *, keep: bool) -> None:
        telemetry.use_tracer_provider(self.provider if variant.tracing else None)
        telemetry.use_meter_provider(self.meters if variant.otlp_metrics else None)
        telemetry.enable_metrics(variant.metrics)
        executor, run, subtask = await self._executor(variant)
        gc.collect()  # garbage left by one variant is not collected on another's time
        wall, cpu = time.perf_counter(), time.process_time()
        result = await executor.run(run=run, subtask=subtask, inputs={})
        if variant.tracing:  # its spans are exported on its own time, not the next variant's
            await asyncio.to_thread(self.provider.force_flush)
        if variant.otlp_metrics:
            await asyncio.to_thread(self.meters.force_flush)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert isinstance(result, SubtaskResult) and result.status == "completed", result
        if keep:
            self.walls.setdefault(variant.name, []).append(wall * 1000 / self.steps)
            self.cpus.setdefault(variant.name, []).append(cpu * 1000 / self.steps)

    async def _executor(self, variant: Variant) -> tuple[Executor, Run, Subtask]:
        subtask = Subtask(id="s1", description="check every host", required_tools=["lookup"])
        plan = Plan(subtasks=[subtask])
        run = await self.store.create_run(Run(goal="check every host", requester="U0B", plan=plan))
        audit = Audit(store=self.store)
        model = self._model(variant)
        budget = Budget(limits=BudgetLimits(llm_calls=10_000, tokens=10**9, usd=10_000.0))
        audited: tuple[Middleware, ...] = (
            (AuditedCalls(audit=audit, run_id=run.id),) if variant.audit else ()
        )
        channel = RecordingChannel(decider=approve_all())
        executor = Executor(
            llm=llm_stack(model, budget, *audited, telemetry.ObservedCalls(model=model)),
            tools=registry(),
            gate=ApprovalGate(store=self.store, channel=channel, policy=ApprovalPolicy(),
                              audit=audit),
            limits=ExecutorLimits(max_iterations=self.steps + 5,
                                  loop_repeat_limit=self.steps + 5),
            context=lambda run: ToolContext(run=run, workspace=self.folder, channel=channel),
            journal=ToolJournal(store=self.store),
            audit=audit if variant.audit else None,
        )  # fmt: skip
        return executor, run, subtask

    def _model(self, variant: Variant) -> AnthropicLLM:
        return AnthropicLLM(client=self.client(variant), planner_model=MODEL,
                            executor_model=MODEL, fast_model=MODEL)  # fmt: skip


def noop_span_microseconds(count: int = 100_000) -> float:
    """One span with no provider configured: the cost of tracing left off."""
    telemetry.use_tracer_provider(None)
    started = time.perf_counter()
    for _ in range(count):
        with span("airlock.noop"):
            pass
    return (time.perf_counter() - started) * 1e6 / count


def step_metrics_microseconds(count: int = 20_000) -> float:
    """The metric updates of one step (a model call and a tool call), on their own."""
    usage = Usage(input_tokens=40, output_tokens=20, cost_usd=0.0003)
    response = LLMResponse(content=[], stop_reason="tool_use", model=MODEL, usage=usage)
    started = time.perf_counter()
    for _ in range(count):
        _metrics.llm_answered(ModelTier.EXECUTOR, response)
        _metrics.model_called(MODEL, "ok", 0.001)
        _metrics.tool_ran("lookup", failed=False, seconds=0.001)
    return (time.perf_counter() - started) * 1e6 / count


async def measure(steps: int, runs: int) -> Bench:
    """Every variant, taken in turn ``runs`` times after a warm-up; the medians are in ``Bench``."""
    helper = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.observability", "--serve", "--steps", str(steps),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert helper.stdout is not None and helper.stdin is not None
    standin = (await helper.stdout.readline()).decode().strip()
    collector = (await helper.stdout.readline()).decode().strip()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=collector)))
    exporter = OTLPMetricExporter(endpoint=collector.replace("/v1/traces", "/v1/metrics"))
    meters = MeterProvider(metric_readers=[PeriodicExportingMetricReader(exporter)])
    with tempfile.TemporaryDirectory(prefix="airlock-bench-") as name:
        store = await open_store(f"sqlite:///{Path(name) / 'bench.db'}")
        bench = Bench(store=store, provider=provider, meters=meters, standin=standin,
                      folder=Path(name), steps=steps)  # fmt: skip
        try:
            for round_ in range(runs + 1):  # round 0 warms up imports, connections, caches
                turn = round_ % len(VARIANTS)
                for variant in VARIANTS[turn:] + VARIANTS[:turn]:
                    await bench.once(variant, keep=round_ > 0)
        finally:
            await asyncio.to_thread(provider.shutdown)  # flushes what is still batched
            await asyncio.to_thread(meters.shutdown)
            telemetry.use_tracer_provider(None)
            telemetry.use_meter_provider(None)
            telemetry.enable_metrics(True)
            for client in bench.clients.values():
                await client.close()
            await store.close()
            helper.stdin.close()
            await helper.wait()
    return bench


async def main(steps: int, runs: int) -> None:
    report(await measure(steps, runs), steps, runs)


def report(bench: Bench, steps: int, runs: int) -> None:
    table = Table(title=f"executor step, {steps} steps x {runs} runs per variant (medians)")
    for column in ("variant", "wall ms/step", "vs off", "CPU ms/step", "vs off"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    base_wall = statistics.median(bench.walls["off"])
    base_cpu = statistics.median(bench.cpus["off"])
    for variant in VARIANTS:
        wall = statistics.median(bench.walls[variant.name])
        cpu = statistics.median(bench.cpus[variant.name])
        table.add_row(variant.name, f"{wall:.3f}", f"{wall / base_wall:.3f}x", f"{cpu:.3f}",
                      f"{cpu / base_cpu:.3f}x")  # fmt: skip
    console = Console(width=120)
    console.print(table)
    noop = noop_span_microseconds()
    console.print(f"one no-op span (tracing not configured): {noop:.2f} µs; a step opens two")
    console.print(f"metric updates of one step, alone: {step_metrics_microseconds():.2f} µs")


async def serve(steps: int) -> None:
    """The stand-in and a collector that accepts and drops OTLP/HTTP traces and metrics, until
    stdin closes."""

    async def drop(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", drop)
    app.router.add_post("/v1/metrics", drop)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with AnthropicStandIn(api_key=KEY, default=responder(steps, 0.0)) as server:
        print(server.base_url, flush=True)
        print(f"http://127.0.0.1:{port}/v1/traces", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.requests.clear()  # nothing to check: the benchmark asserts nothing here
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="tool calls per run")
    parser.add_argument("--runs", type=int, default=20, help="measured runs per variant")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        asyncio.run(serve(arguments.steps))
    else:
        asyncio.run(main(arguments.steps, arguments.runs))
