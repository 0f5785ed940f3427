"""Prometheus helpers: an injectable registry, HTTP RED metrics and the /metrics response."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.openmetrics import exposition as openmetrics
from starlette.responses import Response

__all__ = ["LATENCY_BUCKETS", "HttpMetrics", "metrics_response", "new_registry"]

# Sub-millisecond resolution matters for a runtime whose p50 is a few hundred microseconds.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def new_registry() -> CollectorRegistry:
    """A fresh registry (one per app, so tests and several apps in a process don't clash)."""
    # The *_created series double the exposition for no use of ours (process-wide switch).
    disable_created_metrics()  # type: ignore[no-untyped-call]
    return CollectorRegistry(auto_describe=True)


def metrics_response(registry: CollectorRegistry, accept: str | None = None) -> Response:
    """The exposition of ``registry``: OpenMetrics (with exemplars) when ``accept`` asks for
    it, as Prometheus does when exemplar storage is on; else the Prometheus text format."""
    if accept and "application/openmetrics-text" in accept:
        return Response(
            content=openmetrics.generate_latest(registry),  # type: ignore[no-untyped-call]
            media_type=openmetrics.CONTENT_TYPE_LATEST,
        )
    return Response(content=generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class HttpMetrics:
    """Rate, errors and duration of the HTTP requests one service handles.

    Labels are bounded: ``route`` is the route template (``/v2/models/{model}/infer``),
    never the raw path.
    """

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        prefix = f"orchard_{service}_http"
        self.requests = Counter(
            f"{prefix}_requests",
            "HTTP requests handled, by method, route template and status code.",
            ["method", "route", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            f"{prefix}_request_duration_seconds",
            "Time to handle an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            f"{prefix}_requests_in_flight",
            "HTTP requests being handled now.",
            registry=registry,
        )

    def observe(self, method: str, route: str, code: int, seconds: float) -> None:
        """Record one finished request."""
        self.requests.labels(method, route, str(code)).inc()
        self.duration.labels(method, route).observe(seconds)
