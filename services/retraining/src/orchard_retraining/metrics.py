"""The retraining service's own Prometheus metrics (per-route RED metrics come from core)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["RetrainingMetrics"]

# Training runs take seconds (demo) to hours (real models).
_RUN_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)


class RetrainingMetrics:
    """Triggers, pipeline runs, quality gates and rollouts, on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.triggers = Counter(
            "orchard_retraining_triggers",
            "Retraining triggers received, by source (evaluation, alertmanager, schedule,"
            " manual), kind (the reason's category) and outcome (accepted, deduplicated)",
            ["source", "kind", "outcome"],
            registry=registry,
        )
        self.pipeline_runs = Counter(
            "orchard_retraining_pipeline_runs",
            "Pipeline runs finished, by model and status (succeeded, failed, cancelled)",
            ["model", "status"],
            registry=registry,
        )
        self.pipeline_run_duration = Histogram(
            "orchard_retraining_pipeline_run_duration_seconds",
            "How long finished pipeline runs took, from start to end",
            ["model"],
            buckets=_RUN_BUCKETS,
            registry=registry,
        )
        self.pipeline_runs_running = Gauge(
            "orchard_retraining_pipeline_runs_running",
            "Pipeline runs now pending or running, by model",
            ["model"],
            registry=registry,
        )
        self.gate_decisions = Counter(
            "orchard_retraining_gate_decisions",
            "Quality-gate judgments of candidates, by model and verdict (passed, failed,"
            " inconclusive, skipped)",
            ["model", "verdict"],
            registry=registry,
        )
        self.rollout_decisions = Counter(
            "orchard_retraining_rollout_decisions",
            "Rollout decisions, by model and action (start, advance, promote, rollback, abort,"
            " wait, hold, pause, resume)",
            ["model", "action"],
            registry=registry,
        )
        self.rollout_candidate_weight = Gauge(
            "orchard_retraining_rollout_candidate_weight_percent",
            "The share of a model's traffic its rollout's candidate gets now (0 without one)",
            ["model"],
            registry=registry,
        )
        self.rollout_active = Gauge(
            "orchard_retraining_rollout_active",
            "1 while a model has an unfinished rollout, by model and status (canary,"
            " shadowing, experiment, paused)",
            ["model", "status"],
            registry=registry,
        )
        self.rollout_last_change = Gauge(
            "orchard_retraining_rollout_last_change_timestamp_seconds",
            "When a model's unfinished rollout last changed step or status (for 'stuck' alerts)",
            ["model"],
            registry=registry,
        )
        self.evaluation_requests = Counter(
            "orchard_retraining_evaluation_requests",
            "Questions to evaluation (compare, experiments), by outcome (ok, unreachable, invalid)",
            ["outcome"],
            registry=registry,
        )
        self.registry_errors = Counter(
            "orchard_retraining_registry_errors",
            "MLflow registry calls that failed (they are retried), by operation",
            ["operation"],
            registry=registry,
        )
