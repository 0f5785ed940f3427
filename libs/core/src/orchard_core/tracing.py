"""OpenTelemetry set-up: on when an OTLP endpoint is configured, a no-op otherwise."""

from __future__ import annotations

import os
from collections.abc import Mapping

from fastapi import FastAPI
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

__all__ = ["setup_tracing", "tracing_enabled"]

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True when the standard OTLP endpoint variables ask for traces to be exported."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(env.get(name) for name in _ENDPOINT_VARS)


def setup_tracing(
    app: FastAPI,
    service_name: str,
    *,
    exporter: SpanExporter | None = None,
    environ: Mapping[str, str] | None = None,
) -> TracerProvider | None:
    """Instrument ``app`` and return its tracer provider, or do nothing and return None.

    Tracing is on when an OTLP endpoint is configured (the exporter then reads the standard
    ``OTEL_*`` variables) or when an ``exporter`` is passed (tests). The caller shuts the
    provider down at the end of the app's lifespan so buffered spans are flushed.
    """
    if exporter is None and not tracing_enabled(environ):
        return None
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics"
    )
    return provider
