"""Executive summary: volume, availability and p99 against the SLOs, model health, drift."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from panels import SloTargets, new_dashboard, stat, steps, timeseries

__all__ = ["build"]


# Models whose versions are in dataset drift (features), 1 while any is.
_DRIFTED = 'max by (model) (orchard_evaluation_dataset_drift{part="features"})'
# A model is degraded while any of its versions is in dataset drift, or its accuracy
# (realized or estimated) is more than the evaluation service's default quality drop
# tolerance (0.05) below its training accuracy.
_DEGRADED = (
    f"({_DRIFTED} == 1)"
    " or (max by (model) ("
    'orchard_evaluation_quality{metric="accuracy", source=~"realized|estimated"}'
    " < on (model, version) group_left () ("
    'orchard_evaluation_reference_quality{metric="accuracy"} - 0.05)))'
)
_SERVING = "group by (model) (orchard_gateway_predictions_total)"


def build(slo: SloTargets) -> Dashboard:
    """The day at a glance: volume, availability and latency against the SLO, model health."""
    availability = steps((None, "red"), (slo.availability, "green"))
    return (
        new_dashboard(
            "orchard-executive",
            "Orchard / Executive summary",
            "Predictions, availability and latency against the SLOs, model health, drift"
            " incidents and how fast they were fixed — over the last day.",
            time_from="now-7d",
            refresh="5m",
        )
        .with_row(Row("Service"))
        .with_panel(
            stat(
                "Predictions (last 24 h)",
                "Predictions the gateway answered in the last day, every model.",
                [("sum(increase(orchard_gateway_predictions_total[1d]))", "predictions")],
                decimals=0,
            )
        )
        .with_panel(
            stat(
                "Availability (last 24 h)",
                "Share of predictions without a server-side failure over the last day, per"
                f" model; green at or above the SLO target ({slo.availability:g}).",
                [("1 - orchard:gateway_prediction_errors:ratio_rate1d", "{{model}}")],
                unit="percentunit",
                thresholds=availability,
                decimals=3,
            )
        )
        .with_panel(
            stat(
                "p99 latency (last 24 h)",
                "99th percentile of the end-to-end prediction time over the last day; green"
                f" within the latency SLO's threshold ({slo.latency_seconds:g} s).",
                [
                    (
                        "histogram_quantile(0.99, sum by (le) "
                        "(rate(orchard_gateway_prediction_duration_seconds_bucket[1d])))",
                        "p99",
                    )
                ],
                unit="s",
                thresholds=steps((None, "green"), (slo.latency_seconds, "red")),
            )
        )
        .with_panel(
            stat(
                "Drift incidents (last 24 h)",
                "Drift incidents evaluation raised in the last day (data, prediction and concept"
                " drift triggers; repeats within the cooldown are not new incidents).",
                [
                    (
                        "sum(increase(orchard_evaluation_triggers_total"
                        '{kind=~".*drift", outcome!="deduplicated"}[1d])) or vector(0)',
                        "incidents",
                    )
                ],
                thresholds=steps((None, "green"), (1.0, "orange")),
                decimals=0,
            )
        )
        .with_panel(
            timeseries(
                "Availability vs SLO",
                "Availability over the trailing day per model; the SLO target is"
                f" {slo.availability:g}.",
                [
                    ("1 - orchard:gateway_prediction_errors:ratio_rate1d", "{{model}}"),
                    (f"vector({slo.availability:g})", "SLO target"),
                ],
                unit="percentunit",
            )
        )
        .with_panel(
            timeseries(
                "Predictions per day",
                "Predictions answered over the trailing day, by model.",
                [
                    (
                        "sum by (model) (increase(orchard_gateway_predictions_total[1d]))",
                        "{{model}}",
                    )
                ],
            )
        )
        .with_row(Row("Models"))
        .with_panel(
            stat(
                "Models healthy",
                "Models serving predictions that are neither in dataset drift nor more than 0.05"
                " below their training accuracy.",
                [(f"count({_SERVING} unless on (model) ({_DEGRADED})) or vector(0)", "healthy")],
                decimals=0,
            )
        )
        .with_panel(
            stat(
                "Models degraded",
                "Models in dataset drift (features) or with accuracy (realized or estimated)"
                " more than 0.05 below their training accuracy.",
                [(f"count({_DEGRADED}) or vector(0)", "degraded")],
                thresholds=steps((None, "green"), (1.0, "red")),
                decimals=0,
            )
        )
        .with_panel(
            stat(
                "Time from drift detected to promoted fix",
                "Per model over the last day: the time any of its versions was in dataset"
                " drift, divided by the rollouts promoted (at least one). Drift ends when the"
                " promoted fix takes the traffic, so with one incident this is the time from"
                " detection to the fix; while drift is still open it is the time so far"
                " (0: no drift).",
                [
                    (
                        f"(sum_over_time(({_DRIFTED})[1d:1m]) * 60) / on (model) (clamp_min("
                        "sum by (model) (increase(orchard_retraining_rollout_decisions_total"
                        f'{{action="promote"}}[1d])), 1) or ({_DRIFTED} * 0 + 1))',
                        "{{model}}",
                    )
                ],
                unit="s",
                width=12,
            )
        )
    )
