"""The gateway's own Prometheus metrics (per-route RED metrics come from orchard_core)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from orchard_core.metrics import LATENCY_BUCKETS

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    """Upstream calls and route-table reloads, registered on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.upstream_requests = Counter(
            "orchard_gateway_upstream_requests",
            "Requests forwarded to model backends, by model, routed version and the backend's"
            " status code; 'unreachable', 'timeout', 'error' (broken answer) or 'cancelled'"
            " (the caller went away) when the backend gave none.",
            ["model", "version", "code"],
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "orchard_gateway_upstream_duration_seconds",
            "Time from sending a request to a backend to having its whole answer.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.route_table_reloads = Counter(
            "orchard_gateway_route_table_reloads",
            "Route table loads from its file, by outcome (success, error).",
            ["outcome"],
            registry=registry,
        )
        self.routed_models = Gauge(
            "orchard_gateway_routed_models",
            "Models in the route table in force.",
            registry=registry,
        )
        # Label children bound once per series: .labels() takes a lock and hashes the labels.
        self._calls: dict[tuple[str, str, str], Counter] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}

    def observe_upstream(self, model: str, version: str, code: str, seconds: float) -> None:
        """Record one finished upstream call (``code``: a status or a failure's name)."""
        key = (model, version, code)
        calls = self._calls.get(key)
        if calls is None:
            calls = self._calls[key] = self.upstream_requests.labels(model, version, code)
        calls.inc()
        series = (model, version)
        duration = self._durations.get(series)
        if duration is None:
            duration = self._durations[series] = self.upstream_duration.labels(model, version)
        duration.observe(seconds)

    def reloaded(self, *, ok: bool, models: int | None = None) -> None:
        """Record one route table load; ``models`` is the size of the table now in force."""
        self.route_table_reloads.labels("success" if ok else "error").inc()
        if models is not None:
            self.routed_models.set(models)
