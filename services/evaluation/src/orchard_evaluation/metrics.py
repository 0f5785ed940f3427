"""The evaluation service's own Prometheus metrics (per-route RED metrics come from core)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

__all__ = ["EvaluationMetrics"]


class EvaluationMetrics:
    """Ingest outcomes, registered on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "orchard_evaluation_events_ingested",
            "Prediction events received, by outcome: accepted (stored), duplicate (stored"
            " before: same request_id and shadow) or rejected (invalid; see the response).",
            ["outcome"],
            registry=registry,
        )
        self.feedback = Counter(
            "orchard_evaluation_feedback_ingested",
            "Feedback items received, by outcome: joined (its prediction is stored), pending"
            " (stored; joins when the prediction arrives), duplicate (the id already has a"
            " label; the first stays) or rejected (invalid).",
            ["outcome"],
            registry=registry,
        )
        self.cloudevents = Counter(
            "orchard_evaluation_cloudevents",
            "KServe logger CloudEvents, by outcome: waiting (for its pair), joined (made an"
            " event), duplicate, rejected (invalid), unpaired (its pair never came; dropped).",
            ["outcome"],
            registry=registry,
        )
        self.triggers = Counter(
            "orchard_evaluation_triggers",
            "Retraining triggers by kind and outcome: sent (retraining took it), failed (given"
            " up after retries, or refused), deduplicated (within the cooldown of the last"
            " one), recorded (no retraining URL configured: kept, not sent).",
            ["kind", "outcome"],
            registry=registry,
        )
        self.profiled = Counter(
            "orchard_evaluation_events_profiled",
            "Events folded into window profiles, by outcome: profiled, failed (an error"
            " answer: nothing to profile), skipped (no reference profile for the version"
            " within the wait; see ORCHARD_EVALUATION_REFERENCE_WAIT_S).",
            ["outcome"],
            registry=registry,
        )
