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
            "Route table loads from its source (file or URL), by outcome (success, error).",
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
        self.predictions = Counter(
            "orchard_gateway_predictions",
            "Predictions answered, by model, the version and arm that served them, and status"
            " code (or 'unreachable', 'timeout', 'circuit_open' when no backend answered)."
            " Trace ids ride along as exemplars when tracing is on.",
            ["model", "version", "arm", "code"],
            registry=registry,
        )
        self.prediction_duration = Histogram(
            "orchard_gateway_prediction_duration_seconds",
            "Time to answer a prediction through the gateway (backend call and fallback).",
            ["model", "version", "arm"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.fallbacks = Counter(
            "orchard_gateway_fallbacks",
            "Predictions whose version's backend was down or its circuit open, so the champion"
            " answered instead; by model, the version that failed, and why.",
            ["model", "version", "reason"],
            registry=registry,
        )
        self.mirror_requests = Counter(
            "orchard_gateway_mirror_requests",
            "Copies of predictions sent to mirror (shadow) versions, by outcome code; 'skipped'"
            " when too many were in flight. Their answers are discarded.",
            ["model", "version", "code"],
            registry=registry,
        )
        self.mirror_duration = Histogram(
            "orchard_gateway_mirror_duration_seconds",
            "Time a mirror (shadow) version took to answer.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.route_table_loaded_at = Gauge(
            "orchard_gateway_route_table_last_success_timestamp_seconds",
            "When a route table was last loaded (or found unchanged) from its source.",
            registry=registry,
        )
        # Label children bound once per series: .labels() takes a lock and hashes the labels.
        self._calls: dict[tuple[str, str, str], Counter] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}
        self._predictions: dict[tuple[str, str, str, str], Counter] = {}
        self._prediction_durations: dict[tuple[str, str, str], Histogram] = {}

    def observe_prediction(
        self,
        model: str,
        version: str,
        arm: str,
        code: str,
        seconds: float,
        trace_id: str | None = None,
    ) -> None:
        """Record one answered prediction; ``trace_id`` becomes the exemplar."""
        exemplar = {"trace_id": trace_id} if trace_id else None
        key = (model, version, arm, code)
        calls = self._predictions.get(key)
        if calls is None:
            calls = self._predictions[key] = self.predictions.labels(*key)
        calls.inc(exemplar=exemplar)
        series = (model, version, arm)
        duration = self._prediction_durations.get(series)
        if duration is None:
            duration = self._prediction_durations[series] = self.prediction_duration.labels(*series)
        duration.observe(seconds, exemplar=exemplar)

    def fell_back(self, model: str, version: str, reason: str) -> None:
        """Record one prediction moved from ``version`` to the champion."""
        self.fallbacks.labels(model, version, reason).inc()

    def observe_mirror(self, model: str, version: str, code: str, seconds: float | None) -> None:
        """Record one mirrored request (``seconds`` None when it was skipped)."""
        self.mirror_requests.labels(model, version, code).inc()
        if seconds is not None:
            self.mirror_duration.labels(model, version).observe(seconds)

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
        if ok:
            self.route_table_loaded_at.set_to_current_time()
        if models is not None:
            self.routed_models.set(models)

    def retried(self, model: str, retries: int) -> None:
        """Record ``retries`` extra tries made for one request to ``model``."""
        if retries > 0:
            self.upstream_retries.labels(model).inc(retries)

    def circuit(self, backend: str, state: int) -> None:
        """Record a backend's breaker state (0 closed, 1 half-open, 2 open)."""
        self.circuit_state.labels(backend).set(state)
