"""The runtime's own Prometheus metrics (HTTP RED metrics come from orchard_core)."""

from __future__ import annotations

import contextlib
import os
import resource
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram

from orchard_core.metrics import LATENCY_BUCKETS

__all__ = ["OUTCOMES", "STATES", "UNRESOLVED", "InferenceMetrics", "ModelMetrics"]

#: ``outcome`` label values of the per-model request counter.
OUTCOMES = ("success", "invalid_input", "not_ready", "error")
#: ``state`` values of the model state enum (``ModelState`` values).
STATES = ("LOADING", "READY", "FAILED", "EVICTED")
#: ``version`` label of a load attempt whose URI never resolved to a version.
UNRESOLVED = "none"
#: Rows (or requests) in one model call: powers of two up to the largest batch allowed.
BATCH_BUCKETS = tuple(float(2**n) for n in range(13))
#: Queue waits are bounded by the batching delay (2 ms by default): finer than LATENCY_BUCKETS.
QUEUE_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ModelMetrics:
    """Label children bound once per model version, so the hot path only increments."""

    success: Counter
    invalid_input: Counter
    not_ready: Counter
    error: Counter
    inference_seconds: Histogram
    queue_wait_seconds: Histogram
    total_seconds: Histogram
    batch_size: Histogram
    batch_requests: Histogram
    batch_fallbacks: Counter


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
        self.queue_wait = Histogram(
            "orchard_inference_queue_wait_seconds",
            "Time a request waits for its model call to start (batching queue).",
            ["model", "version"],
            buckets=QUEUE_BUCKETS,
            registry=registry,
        )
        self.total = Histogram(
            "orchard_inference_model_total_seconds",
            "Time the data plane spends on one request: decode, queue, inference, encode.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "orchard_inference_batch_size",
            "Rows in one model call (requests merged by adaptive batching, or one request).",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.batch_requests = Histogram(
            "orchard_inference_batch_requests",
            "Requests answered by one model call (1 when batching merged nothing).",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.batch_fallbacks = Counter(
            "orchard_inference_batch_fallbacks",
            "Merged model calls that failed and were rerun one request at a time.",
            ["model", "version"],
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
        self.models_loaded = Gauge(
            "orchard_inference_models_loaded",
            "Model versions in memory now (READY), start-up and lazily loaded alike.",
            registry=registry,
        )
        self.models_memory = Gauge(
            "orchard_inference_models_memory_bytes",
            "Estimated memory of the model versions in memory (bytes of their model files).",
            registry=registry,
        )
        self.evictions = Counter(
            "orchard_inference_model_evictions",
            "Model versions evicted (least recently used) to stay within the model budget.",
            ["model"],
            registry=registry,
        )
        self.resident_memory = Gauge(
            "orchard_inference_resident_memory_bytes",
            "Resident memory of the runtime process (to calibrate the memory budget).",
            registry=registry,
        )
        self.resident_memory.set_function(resident_memory_bytes)

    def bind(self, model: str, version: str) -> ModelMetrics:
        """Label children for one model version (create once, keep on the model)."""
        return ModelMetrics(
            success=self.requests.labels(model, version, "success"),
            invalid_input=self.requests.labels(model, version, "invalid_input"),
            not_ready=self.requests.labels(model, version, "not_ready"),
            error=self.requests.labels(model, version, "error"),
            inference_seconds=self.inference.labels(model, version),
            queue_wait_seconds=self.queue_wait.labels(model, version),
            total_seconds=self.total.labels(model, version),
            batch_size=self.batch_size.labels(model, version),
            batch_requests=self.batch_requests.labels(model, version),
            batch_fallbacks=self.batch_fallbacks.labels(model, version),
        )

    def set_state(self, model: str, version: str, state: str) -> None:
        """Record a model version's load state."""
        self.state.labels(model, version).state(state)

    def loaded(self, model: str, version: str, seconds: float, ok: bool) -> None:
        """Record the end of one load attempt."""
        self.load_seconds.labels(model, version).set(seconds)
        self.loads.labels(model, "success" if ok else "failure").inc()

    def models(self, count: int, memory_bytes: int) -> None:
        """Record the versions in memory now and their estimated bytes."""
        self.models_loaded.set(count)
        self.models_memory.set(memory_bytes)

    def evicted(self, model: str) -> None:
        """Count one evicted version of ``model``."""
        self.evictions.labels(model).inc()

    def forget(self, model: str, version: str) -> None:
        """Drop an unloaded version's series, so label sets stay bounded by what is served."""
        for outcome in OUTCOMES:
            _remove(self.requests, model, version, outcome)
        for metric in (
            self.inference,
            self.queue_wait,
            self.total,
            self.batch_size,
            self.batch_requests,
            self.batch_fallbacks,
            self.state,
            self.load_seconds,
        ):
            _remove(metric, model, version)


def _remove(metric: Counter | Histogram | Enum | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never observed: nothing to drop
        metric.remove(*labels)


def resident_memory_bytes() -> float:
    """This process's resident set size: /proc on Linux, else the peak from getrusage."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return float(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return float(peak * 1024)  # kilobytes on Linux (bytes on macOS: an estimate anyway)
