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
            "Requests forwarded to model backends (once per caller request, retries or not;"
            " see orchard_gateway_upstream_retries_total), by model, routed version and the"
            " last try's status code; 'unreachable', 'timeout', 'error' (broken answer),"
            " 'cancelled' (the caller went away) when the backend gave none, or"
            " 'circuit_open' when the backend's circuit breaker refused it.",
            ["model", "version", "code"],
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "orchard_gateway_upstream_duration_seconds",
            "Time from sending a request to a backend to having its whole answer (all tries).",
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
        self.upstream_retries = Counter(
            "orchard_gateway_upstream_retries",
            "Retried tries at a model's backend (after a connect failure or a 503), by model.",
            ["model"],
            registry=registry,
        )
        self.circuit_state = Gauge(
            "orchard_gateway_circuit_state",
            "State of each backend's circuit breaker: 0 closed, 1 half-open, 2 open.",
            ["backend"],
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

    def retried(self, model: str, retries: int) -> None:
        """Record ``retries`` extra tries made for one request to ``model``."""
        if retries > 0:
            self.upstream_retries.labels(model).inc(retries)

    def circuit(self, backend: str, state: int) -> None:
        """Record a backend's breaker state (0 closed, 1 half-open, 2 open)."""
        self.circuit_state.labels(backend).set(state)
