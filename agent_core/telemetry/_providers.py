"""Where airlock's spans and OpenTelemetry metrics go: the providers, and their OTLP set-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.metrics import Histogram, Meter
from opentelemetry.trace import Tracer

from agent_core.telemetry import _conventions as gen_ai

if TYPE_CHECKING:
    from agent_core.config import Settings

SCOPE = "airlock"
"""Instrumentation scope of airlock's tracer and meter."""


@dataclass(kw_only=True, frozen=True)
class GenAIInstruments:
    """The GenAI client histograms, made by one meter."""

    duration: Histogram
    tokens: Histogram

    @classmethod
    def from_meter(cls, meter: Meter) -> GenAIInstruments:
        """The two histograms with the conventions' units and bucket advice."""
        return cls(
            duration=meter.create_histogram(
                gen_ai.DURATION, unit="s", description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=gen_ai.DURATION_BUCKETS,
            ),
            tokens=meter.create_histogram(
                gen_ai.TOKEN_USAGE, unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=gen_ai.TOKEN_BUCKETS,
            ),
        )  # fmt: skip


@dataclass(kw_only=True)
class _Providers:
    tracer: Tracer
    """The API's proxy tracer follows the global provider once one is set."""
    instruments: GenAIInstruments
    """Made by the API's proxy meter, which likewise follows the global meter provider."""


_providers = _Providers(
    tracer=trace.get_tracer(SCOPE),
    instruments=GenAIInstruments.from_meter(metrics.get_meter(SCOPE)),
)


def tracer() -> Tracer:
    """The tracer airlock's spans start from."""
    return _providers.tracer


def instruments() -> GenAIInstruments:
    """The GenAI histograms model calls are recorded in."""
    return _providers.instruments


def use_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Send airlock's spans to ``provider``; None goes back to the global one (the default).

    For tests and benchmarks: OpenTelemetry lets the global provider be set only once.
    """
    _providers.tracer = (provider or trace.get_tracer_provider()).get_tracer(SCOPE)


def use_meter_provider(provider: metrics.MeterProvider | None) -> None:
    """Record airlock's GenAI metrics in ``provider``; None goes back to the global one."""
    meter = (provider or metrics.get_meter_provider()).get_meter(SCOPE)
    _providers.instruments = GenAIInstruments.from_meter(meter)


def configure_tracing(settings: Settings) -> Callable[[], None]:
    """Export spans and metrics over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

    Returns the shutdown. The SDK providers (service name ``OTEL_SERVICE_NAME``) become the
    process's global ones, so the anthropic SDK's and MCP's own spans join airlock's traces.
    Spans are batched to ``/v1/traces``; the GenAI metrics go to ``/v1/metrics`` every
    ``OTEL_METRIC_EXPORT_INTERVAL`` ms (60 s). The exporters read the other
    ``OTEL_EXPORTER_OTLP_*`` variables (headers, timeout, compression) themselves. Nothing
    is installed without an endpoint, or when the process already has a tracer provider (a
    host such as ``opentelemetry-instrument`` set one up). The shutdown flushes what is
    pending and blocks, so entry points run it in a thread.
    """
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint is None or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return _nothing
    # Imported here: a process that exports nothing never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: settings.otel_service_name})
    # The variable names the collector's base URL; the signal paths are the spec's.
    base = endpoint.rstrip("/")
    tracing = TracerProvider(resource=resource)
    tracing.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=base + "/v1/traces")))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=base + "/v1/metrics"))
    metering = MeterProvider(resource=resource, metric_readers=[reader])
    trace.set_tracer_provider(tracing)
    metrics.set_meter_provider(metering)

    def shutdown() -> None:
        tracing.shutdown()
        metering.shutdown()  # collects and exports once more before it stops

    return shutdown


def _nothing() -> None:
    return None
