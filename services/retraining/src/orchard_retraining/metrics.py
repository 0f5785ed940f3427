"""The retraining service's own Prometheus metrics (per-route RED metrics come from core)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

__all__ = ["RetrainingMetrics"]


class RetrainingMetrics:
    """Triggers by source, kind and outcome, registered on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.triggers = Counter(
            "orchard_retraining_triggers",
            "Retraining triggers received, by source (evaluation, alertmanager, schedule,"
            " manual), kind (the reason's category) and outcome (accepted, deduplicated)",
            ["source", "kind", "outcome"],
            registry=registry,
        )
