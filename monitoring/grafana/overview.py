"""Platform overview: RED per service and per model, SLO error budgets, targets up."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from panels import (
    MODEL,
    label_variable,
    new_dashboard,
    stat,
    steps,
    timeseries,
    up_down,
)

__all__ = ["build"]

#: The services whose HTTP metrics orchard_core names orchard_<service>_http_* (= scrape jobs).
SERVICES = ("gateway", "inference", "evaluation", "retraining")


def build() -> Dashboard:
    """RED per service and per model, SLO error budgets and scrape targets."""
    budget = steps((None, "red"), (0.0, "orange"), (0.25, "green"))
    return (
        new_dashboard(
            "orchard-overview",
            "Orchard / Platform overview",
            "Rate, errors and duration of every Orchard service and model; SLO error budgets.",
            time_from="now-6h",
            refresh="30s",
        )
        .with_variable(
            label_variable("model", "model", "orchard_gateway_predictions_total", title="Model")
        )
        .with_row(Row("Services"))
        .with_panel(
            timeseries(
                "Requests per second by service",
                "HTTP requests each service handles (every route), 5-minute rate.",
                [("sum by (job) (orchard:service_http_requests:rate5m)", "{{job}}")],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            timeseries(
                "Error ratio by service",
                "Share of each service's HTTP requests answered with a 5xx, over 5 minutes.",
                [("max by (job) (orchard:service_http_errors:ratio_rate5m)", "{{job}}")],
                unit="percentunit",
                width=8,
                min_value=0,
            )
        )
        .with_panel(
            timeseries(
                "p99 latency by service",
                "99th percentile of the time each service takes to answer an HTTP request.",
                [
                    (
                        "histogram_quantile(0.99, sum by (job, le) "
                        f"(rate(orchard_{service}_http_request_duration_seconds_bucket"
                        "[$__rate_interval])))",
                        "{{job}}",
                    )
                    for service in SERVICES
                ],
                unit="s",
                width=8,
            )
        )
        .with_row(Row("Models"))
        .with_panel(
            timeseries(
                "Predictions per second by model",
                "Predictions the gateway answered, every version and arm, 5-minute rate.",
                [(f"sum by (model) (orchard:gateway_predictions:rate5m{{{MODEL}}})", "{{model}}")],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            timeseries(
                "Prediction error ratio by model",
                "Share of predictions that failed on the server side (5xx, backend unreachable,"
                " timeout, circuit open), over 5 minutes. 4xx answers are the caller's fault.",
                [
                    (
                        "max by (model) "
                        f"(orchard:gateway_prediction_errors:ratio_rate5m{{{MODEL}}})",
                        "{{model}}",
                    )
                ],
                unit="percentunit",
                width=8,
                min_value=0,
            )
        )
        .with_panel(
            timeseries(
                "p99 prediction latency by model",
                "99th percentile of the end-to-end prediction time through the gateway (the highest"
                " among the model's versions).",
                [
                    (
                        "max by (model) "
                        f"(orchard:gateway_prediction_latency_seconds:p99_5m{{{MODEL}}})",
                        "{{model}}",
                    )
                ],
                unit="s",
                width=8,
            )
        )
        .with_row(Row("SLOs and targets"))
        .with_panel(
            stat(
                "Availability error budget remaining",
                "Share of the availability SLO's error budget left over the SLO period, per"
                " model (monitoring/slo.yaml). Below 0: the SLO is missed.",
                [
                    (
                        "min by (model) "
                        f"(orchard:slo_availability_error_budget_remaining:ratio{{{MODEL}}})",
                        "{{model}}",
                    )
                ],
                unit="percentunit",
                thresholds=budget,
                width=9,
            )
        )
        .with_panel(
            stat(
                "Latency error budget remaining",
                "Share of the latency SLO's error budget left over the SLO period, per model.",
                [
                    (
                        "min by (model) "
                        f"(orchard:slo_latency_error_budget_remaining:ratio{{{MODEL}}})",
                        "{{model}}",
                    )
                ],
                unit="percentunit",
                thresholds=budget,
                width=9,
            )
        )
        .with_panel(
            stat(
                "Targets up",
                "Whether Prometheus reaches each scrape target now.",
                [("up", "{{job}}")],
                thresholds=steps((None, "red"), (1.0, "green")),
                mappings=[up_down()],
                width=6,
            )
        )
    )
