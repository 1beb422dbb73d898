"""OpenTelemetry traces: one provider per service, OTLP over HTTP, off when unconfigured.

The provider is returned to the caller (the app keeps it on `app.state`), and spans are
made with `provider.get_tracer(...)`; nothing here sets OpenTelemetry's global tracer
provider. The *active span* is still OpenTelemetry's context (a contextvar), which is
what `current_trace_id` and `inject_traceparent` read: that is per request, not global.
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

logger = logging.getLogger("medgo.tracing")
_PROPAGATOR = TraceContextTextMapPropagator()


def otlp_traces_url(endpoint: str) -> str:
    """The collector's OTLP/HTTP traces URL: one base URL configures every service."""
    return endpoint.rstrip("/") + "/v1/traces"


def configure_tracing(service_name: str, endpoint: str) -> TracerProvider | None:
    """A provider exporting to `<endpoint>/v1/traces`, or None when `endpoint` is empty.

    The caller owns it: `shutdown()` on exit flushes the spans still batched.
    """
    if not endpoint:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=otlp_traces_url(endpoint))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    logger.info("traces exported to %s", endpoint)
    return provider


def tracer_for(provider: TracerProvider | None, name: str) -> trace.Tracer:
    """The provider's tracer, or a no-op one (its spans are invalid: no id, no header)."""
    return provider.get_tracer(name) if provider is not None else trace.NoOpTracer()


def current_trace_id() -> str | None:
    """The active span's trace id as 32 lowercase hex, or None without a valid span."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


def inject_traceparent(headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus the W3C `traceparent` of the active span (unchanged without one)."""
    _PROPAGATOR.inject(headers)
    return headers
