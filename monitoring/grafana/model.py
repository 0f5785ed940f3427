"""One model: latency, throughput, errors, batching, drift, quality and its rollout."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from panels import MODEL, MODEL_VERSION, label_variable, new_dashboard, timeseries

__all__ = ["build"]


def build() -> Dashboard:
    """One model: latency, throughput, errors, batching, drift, quality and its rollout."""
    return (
        new_dashboard(
            "orchard-model",
            "Orchard / Model",
            "One model's traffic, latency, errors, batching, drift, quality and rollout.",
            time_from="now-6h",
            refresh="30s",
        )
        .with_variable(
            label_variable("model", "model", "orchard_gateway_predictions_total", title="Model")
        )
        .with_variable(
            label_variable(
                "version",
                "version",
                f"orchard_gateway_predictions_total{{{MODEL}}}",
                title="Version",
            )
        )
        .with_row(Row("Traffic"))
        .with_panel(
            timeseries(
                "Prediction latency percentiles",
                "End-to-end prediction time through the gateway (p50, p90, p99 over 5 minutes).",
                [
                    (
                        "max by (model, version) "
                        f"(orchard:gateway_prediction_latency_seconds:{q}_5m{{{MODEL_VERSION}}})",
                        f"{q} {{{{model}}}} v{{{{version}}}}",
                    )
                    for q in ("p50", "p90", "p99")
                ],
                unit="s",
            )
        )
        .with_panel(
            timeseries(
                "Throughput by version and arm",
                "Predictions per second, by the version and route arm that served them.",
                [
                    (
                        "sum by (model, version, arm) (rate(orchard_gateway_predictions_total"
                        f"{{{MODEL_VERSION}}}[$__rate_interval]))",
                        "{{model}} v{{version}} ({{arm}})",
                    )
                ],
                unit="reqps",
            )
        )
        .with_panel(
            timeseries(
                "Errors by code",
                "Predictions not answered with a 2xx, by status code (or unreachable, timeout,"
                " circuit_open when no backend answered).",
                [
                    (
                        "sum by (model, code) (rate(orchard_gateway_predictions_total"
                        f'{{{MODEL_VERSION}, code!~"2.."}}[$__rate_interval]))',
                        "{{model}} {{code}}",
                    )
                ],
                unit="reqps",
            )
        )
        .with_panel(
            timeseries(
                "Batch size",
                "Mean rows per model call in the runtime, every version (adaptive batching merges"
                " requests when above 1).",
                [
                    (
                        f"max by (model) (orchard:inference_batch_size:mean5m{{{MODEL}}})",
                        "{{model}}",
                    )
                ],
                min_value=0,
            )
        )
        .with_row(Row("Drift"))
        .with_panel(
            timeseries(
                "Feature drift score by column",
                "Drift score of each input feature over the monitoring window, against its"
                " threshold (distances drift at or above it; p-value tests below it).",
                [
                    (
                        "max by (model, version, column) (orchard_evaluation_drift_score"
                        f'{{{MODEL_VERSION}, part="features"}})',
                        "{{column}} v{{version}}",
                    ),
                    (
                        "max by (model, version) (orchard_evaluation_drift_threshold"
                        f'{{{MODEL_VERSION}, part="features"}})',
                        "threshold v{{version}}",
                    ),
                ],
            )
        )
        .with_panel(
            timeseries(
                "Drifted share",
                "Share of columns that drifted, features and outputs; dataset drift at 0.5.",
                [
                    (
                        "max by (model, version, part) "
                        f"(orchard_evaluation_drift_share{{{MODEL_VERSION}}})",
                        "{{part}} v{{version}}",
                    )
                ],
                unit="percentunit",
                min_value=0,
                max_value=1,
            )
        )
        .with_row(Row("Quality"))
        .with_panel(
            timeseries(
                "Realized vs estimated accuracy",
                "Accuracy from labels (realized) and label-free (estimated, CBPE) over the"
                " quality window, against the version's training accuracy (reference).",
                [
                    (
                        "max by (model, version, source) (orchard_evaluation_quality"
                        f'{{{MODEL_VERSION}, metric="accuracy", source=~"realized|estimated"}})',
                        "{{source}} v{{version}}",
                    ),
                    (
                        "max by (model, version) (orchard_evaluation_reference_quality"
                        f'{{{MODEL_VERSION}, metric="accuracy"}})',
                        "reference v{{version}}",
                    ),
                ],
                unit="percentunit",
            )
        )
        .with_panel(
            timeseries(
                "Label coverage",
                "Share of the quality window's predictions that have a label.",
                [
                    (
                        "max by (model, version) "
                        f"(orchard_evaluation_label_coverage{{{MODEL_VERSION}}})",
                        "v{{version}}",
                    )
                ],
                unit="percentunit",
                min_value=0,
                max_value=1,
            )
        )
        .with_row(Row("Rollout"))
        .with_panel(
            timeseries(
                "Canary weight",
                "Share of the model's traffic its rollout's candidate gets (0 without one).",
                [
                    (
                        "max by (model) "
                        f"(orchard_retraining_rollout_candidate_weight_percent{{{MODEL}}})",
                        "{{model}}",
                    )
                ],
                unit="percent",
                min_value=0,
                max_value=100,
            )
        )
        .with_panel(
            timeseries(
                "Rollout status",
                "1 while the model's rollout is in this status (canary, shadowing, experiment,"
                " paused).",
                [
                    (
                        f"max by (model, status) (orchard_retraining_rollout_active{{{MODEL}}})",
                        "{{model}} {{status}}",
                    )
                ],
                min_value=0,
                max_value=1,
            )
        )
    )
