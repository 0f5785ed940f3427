"""The runtime's own Prometheus metrics (HTTP RED metrics come from orchard_core)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram

from orchard_core.metrics import LATENCY_BUCKETS

__all__ = ["OUTCOMES", "STATES", "UNRESOLVED", "InferenceMetrics", "ModelMetrics"]

#: ``outcome`` label values of the per-model request counter.
OUTCOMES = ("success", "invalid_input", "not_ready", "error")
#: ``state`` values of the model state enum (``ModelState`` values).
STATES = ("LOADING", "READY", "FAILED")
#: ``version`` label of a load attempt whose URI never resolved to a version.
UNRESOLVED = "none"


@dataclass(frozen=True, slots=True)
class ModelMetrics:
    """Label children bound once per model version, so the hot path only increments."""

    success: Counter
    invalid_input: Counter
    not_ready: Counter
    error: Counter
    inference_seconds: Histogram


class InferenceMetrics:
    """Per-model request counts, inference latency and load state, on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "orchard_inference_model_requests",
            "Inference requests (v2 infer and v1 predict) by model, version and outcome.",
            ["model", "version", "outcome"],
            registry=registry,
        )
        self.inference = Histogram(
            "orchard_inference_model_inference_seconds",
            "Time the model spends computing one request's predictions.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.state = Enum(
            "orchard_inference_model_state",
            "Load state of each model version this runtime knows.",
            ["model", "version"],
            states=list(STATES),
            registry=registry,
        )
        self.load_seconds = Gauge(
            "orchard_inference_model_load_seconds",
            "How long the last load of a model version took (resolve, download, deserialize).",
            ["model", "version"],
            registry=registry,
        )
        self.loads = Counter(
            "orchard_inference_model_loads",
            "Model load attempts by model and outcome (success or failure).",
            ["model", "outcome"],
            registry=registry,
        )

    def bind(self, model: str, version: str) -> ModelMetrics:
        """Label children for one model version (create once, keep on the model)."""
        return ModelMetrics(
            success=self.requests.labels(model, version, "success"),
            invalid_input=self.requests.labels(model, version, "invalid_input"),
            not_ready=self.requests.labels(model, version, "not_ready"),
            error=self.requests.labels(model, version, "error"),
            inference_seconds=self.inference.labels(model, version),
        )

    def set_state(self, model: str, version: str, state: str) -> None:
        """Record a model version's load state."""
        self.state.labels(model, version).state(state)

    def loaded(self, model: str, version: str, seconds: float, ok: bool) -> None:
        """Record the end of one load attempt."""
        self.load_seconds.labels(model, version).set(seconds)
        self.loads.labels(model, "success" if ok else "failure").inc()

    def forget(self, model: str, version: str) -> None:
        """Drop an unloaded version's series, so label sets stay bounded by what is served."""
        for outcome in OUTCOMES:
            _remove(self.requests, model, version, outcome)
        for metric in (self.inference, self.state, self.load_seconds):
            _remove(metric, model, version)


def _remove(metric: Counter | Histogram | Enum | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never observed: nothing to drop
        metric.remove(*labels)
