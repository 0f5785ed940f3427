"""OpenTelemetry set-up: on when an OTLP endpoint is configured, a no-op otherwise.

Everything follows the standard ``OTEL_*`` variables:

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) turns tracing on; spans go
  there over OTLP/HTTP (protobuf). ``OTEL_SDK_DISABLED=true`` turns it off again.
- ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` choose the sampler; the default is
  ``parentbased_always_on``. A production setting is ``parentbased_traceidratio`` with a
  ratio, e.g. ``0.1``: the gateway decides for a whole prediction, the services behind it
  follow the caller's decision. A bad value stops the service with a message naming it.
- ``OTEL_RESOURCE_ATTRIBUTES`` adds resource attributes, e.g.
  ``deployment.environment.name=staging``; ``service.name`` and ``service.version`` are the
  service's own.
- ``OTEL_BSP_SCHEDULE_DELAY`` and friends tune the batch span processor.

Health and metrics endpoints (``/metrics``, ``/healthz``, ``/readyz``, ``/v2/health/*``) are
never traced: probes and scrapes would bury the predictions. More paths can be left out with
``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`` (comma-separated regular expressions on the URL).

Across processes the context travels as W3C trace context: HTTP headers between services,
and the ``TRACEPARENT``/``TRACESTATE`` environment variables into training processes
(:func:`traceparent_env`, :func:`context_from_env`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Final

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace import sampling as _sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from orchard_core.settings import SettingsError

__all__ = [
    "EXCLUDED_URLS",
    "MAX_LINKS",
    "MODEL_ATTRIBUTE",
    "MODEL_VERSION_ATTRIBUTE",
    "context_from_env",
    "new_tracer_provider",
    "set_model_attributes",
    "setup_tracing",
    "trace_links",
    "traceparent_env",
    "tracer_for",
    "tracing_enabled",
]

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_EXCLUDED_URLS_VARS = ("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")

#: Regular expressions (searched in the full URL) of the requests that are never traced.
EXCLUDED_URLS: Final = (
    r"^[a-z]+://[^/]+/(metrics|healthz|readyz)/?$",
    r"^[a-z]+://[^/]+/v2/health/",
)
#: Span attributes naming the model and version a prediction span is about.
MODEL_ATTRIBUTE: Final = "orchard.model"
MODEL_VERSION_ATTRIBUTE: Final = "orchard.model_version"
#: At most this many links on one span (a batch's span links to its items' traces).
MAX_LINKS: Final = 32

_SAMPLERS: Final[Mapping[str, Any]] = {
    "always_on": lambda _arg: _sampling.ALWAYS_ON,
    "always_off": lambda _arg: _sampling.ALWAYS_OFF,
    "traceidratio": lambda arg: _sampling.TraceIdRatioBased(arg),
    "parentbased_always_on": lambda _arg: _sampling.ParentBased(_sampling.ALWAYS_ON),
    "parentbased_always_off": lambda _arg: _sampling.ParentBased(_sampling.ALWAYS_OFF),
    "parentbased_traceidratio": lambda arg: _sampling.ParentBasedTraceIdRatio(arg),
}


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True when the standard OTLP endpoint variables ask for traces to be exported."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(env.get(name) for name in _ENDPOINT_VARS)


def _sampler(env: Mapping[str, str]) -> _sampling.Sampler:
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    make = _SAMPLERS.get(name)
    if make is None:
        known = ", ".join(sorted(_SAMPLERS))
        raise SettingsError(
            f"invalid settings:\n  OTEL_TRACES_SAMPLER: one of {known} (got {name!r})"
        )
    text = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        ratio = float(text) if text else 1.0
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise SettingsError(
            f"invalid settings:\n  OTEL_TRACES_SAMPLER_ARG: a ratio from 0 to 1 (got {text!r})"
        )
    sampler: _sampling.Sampler = make(ratio)
    return sampler


def new_tracer_provider(
    service_name: str,
    *,
    service_version: str | None = None,
    exporter: SpanExporter | None = None,
    environ: Mapping[str, str] | None = None,
) -> TracerProvider | None:
    """A tracer provider exporting over OTLP/HTTP when tracing is configured, else None.

    For processes that are not an app (a training step); apps use :func:`setup_tracing`.
    ``exporter`` forces tracing on with that exporter (tests). The caller shuts the provider
    down before it exits, so that buffered spans are sent.

    Raises:
        SettingsError: ``OTEL_TRACES_SAMPLER`` or its argument is invalid.
    """
    env = os.environ if environ is None else environ
    if exporter is None and not tracing_enabled(env):
        return None
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    attributes: dict[str, str] = {"service.name": service_name, "service.namespace": "orchard"}
    if service_version:
        attributes["service.version"] = service_version
    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES (deployment.environment.name...).
    provider = TracerProvider(resource=Resource.create(attributes), sampler=_sampler(env))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def setup_tracing(
    app: FastAPI,
    service_name: str,
    *,
    service_version: str | None = None,
    exporter: SpanExporter | None = None,
    environ: Mapping[str, str] | None = None,
) -> TracerProvider | None:
    """Instrument ``app`` and return its tracer provider, or do nothing and return None.

    Tracing is on when an OTLP endpoint is configured (the exporter then reads the standard
    ``OTEL_*`` variables) or when an ``exporter`` is passed (tests). Every request but the
    health and metrics endpoints gets a server span, the child of the caller's span when
    the request carries W3C trace context. The caller shuts the provider down at the end of
    the app's lifespan so buffered spans are flushed.

    Raises:
        SettingsError: ``OTEL_TRACES_SAMPLER`` or its argument is invalid.
    """
    env = os.environ if environ is None else environ
    provider = new_tracer_provider(
        service_name, service_version=service_version, exporter=exporter, environ=env
    )
    if provider is None:
        return None
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    excluded = [*EXCLUDED_URLS, *(env.get(name, "") for name in _EXCLUDED_URLS_VARS)]
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=",".join(url for url in excluded if url.strip()),
        # One span per request, not one more per ASGI message sent or received.
        exclude_spans=["receive", "send"],
    )
    _guard_header_decoding(app)
    return provider


def _guard_header_decoding(app: FastAPI) -> None:
    """Let requests whose headers OpenTelemetry cannot decode reach the app untraced.

    Its ASGI middleware decodes every header as UTF-8, else with Python's ``unicode_escape``
    codec, which raises on some bytes (a non-UTF-8 value ending in a backslash) and warns on
    others: the request then got a bare 500 from outside the app instead of the app's answer.
    The instrumented stack is ServerErrorMiddleware → OpenTelemetryMiddleware → the app's;
    the guard goes between the first two and sends such a request past the second.
    """
    from starlette.middleware.errors import ServerErrorMiddleware

    instrumented = app.build_middleware_stack

    def build_middleware_stack() -> Any:
        outer = instrumented()
        traced = getattr(outer, "app", None)
        untraced = getattr(traced, "app", None)
        if isinstance(outer, ServerErrorMiddleware) and untraced is not None:
            outer.app = _DecodableHeadersOnly(traced, untraced)
        return outer

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]


class _DecodableHeadersOnly:
    """Sends a request through ``traced`` when its headers decode as OpenTelemetry decodes
    them, else straight to ``untraced``."""

    def __init__(self, traced: Any, untraced: Any) -> None:
        self.traced = traced
        self.untraced = untraced

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = scope.get("headers") or ()
        if scope["type"] == "lifespan" or all(map(_decodable, headers)):
            await self.traced(scope, receive, send)
        else:
            await self.untraced(scope, receive, send)


def _decodable(header: tuple[bytes, bytes]) -> bool:
    for item in header:
        try:
            item.decode("utf-8")
        except UnicodeDecodeError:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    item.decode("unicode_escape")
            except (UnicodeDecodeError, DeprecationWarning):
                return False
    return True


def tracer_for(owner: Any, name: str) -> trace.Tracer:
    """The tracer of an app built by ``create_app``, or of a provider from
    :func:`new_tracer_provider`; a no-op one when tracing is off (None, or no provider)."""
    provider = owner
    if not isinstance(owner, TracerProvider):
        provider = getattr(getattr(owner, "state", None), "tracer_provider", None)
    if isinstance(provider, TracerProvider):
        return provider.get_tracer(name)
    return trace.NoOpTracer()


def set_model_attributes(model: str, version: str | None = None) -> None:
    """Name the model (and version) on the current span, e.g. a prediction's server span."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute(MODEL_ATTRIBUTE, model)
    if version is not None:
        span.set_attribute(MODEL_VERSION_ATTRIBUTE, version)


def _hex_id(value: object, digits: int) -> int | None:
    if not isinstance(value, str) or len(value) != digits:
        return None
    try:
        number = int(value, 16)
    except ValueError:
        return None
    return number or None


def trace_links(
    ids: Iterable[tuple[object, object]], *, limit: int = MAX_LINKS
) -> tuple[list[trace.Link], int]:
    """Links to the spans named by ``(trace_id, span_id)`` hex pairs, and how many were left
    out because of ``limit`` (a batch's span links to its items' traces, but boundedly).

    Pairs that are not valid ids are skipped; repeated pairs count once.
    """
    seen: set[tuple[int, int]] = set()
    links: list[trace.Link] = []
    left_out = 0
    for trace_hex, span_hex in ids:
        trace_id, span_id = _hex_id(trace_hex, 32), _hex_id(span_hex, 16)
        if trace_id is None or span_id is None or (trace_id, span_id) in seen:
            continue
        seen.add((trace_id, span_id))
        if len(links) >= limit:
            left_out += 1
            continue
        context = trace.SpanContext(
            trace_id,
            span_id,
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
        links.append(trace.Link(context))
    return links, left_out


def traceparent_env(context: Context | None = None) -> dict[str, str]:
    """The current (or ``context``'s) trace context as environment variables for a child
    process: ``TRACEPARENT`` and, when there is one, ``TRACESTATE``; empty without a span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return {key.upper(): value for key, value in carrier.items() if value}


def context_from_env(environ: Mapping[str, str] | None = None) -> Context:
    """The trace context a parent process passed in ``TRACEPARENT``/``TRACESTATE`` (and
    ``BAGGAGE``); an empty context when there is none or it is malformed."""
    env = os.environ if environ is None else environ
    carrier = {
        name.lower(): env[name] for name in ("TRACEPARENT", "TRACESTATE", "BAGGAGE") if name in env
    }
    return propagate.extract(carrier)
