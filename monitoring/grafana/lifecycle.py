"""Model lifecycle: triggers, pipeline runs, quality gates, rollouts and decisions."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from panels import MODEL, label_variable, new_dashboard, timeseries

__all__ = ["build"]


def build() -> Dashboard:
    """Triggers, pipeline runs, quality gates, rollouts and their decisions."""
    return (
        new_dashboard(
            "orchard-lifecycle",
            "Orchard / Model lifecycle",
            "Retraining triggers, pipeline runs, quality gates, rollouts and their decisions.",
            time_from="now-24h",
            refresh="1m",
        )
        .with_variable(
            label_variable(
                "model", "model", "orchard_retraining_pipeline_runs_total", title="Model"
            )
        )
        .with_row(Row("Triggers"))
        .with_panel(
            timeseries(
                "Evaluation triggers",
                "Retraining triggers evaluation raised, by kind and outcome (sent, failed,"
                " deduplicated within the cooldown, recorded without a retraining URL).",
                [
                    (
                        "sum by (kind, outcome) "
                        "(increase(orchard_evaluation_triggers_total[$__rate_interval]))",
                        "{{kind}} {{outcome}}",
                    )
                ],
                bars=True,
            )
        )
        .with_panel(
            timeseries(
                "Retraining triggers received",
                "Triggers retraining received, by kind and outcome (accepted, deduplicated).",
                [
                    (
                        "sum by (source, kind, outcome) "
                        "(increase(orchard_retraining_triggers_total[$__rate_interval]))",
                        "{{source}} {{kind}} {{outcome}}",
                    )
                ],
                bars=True,
            )
        )
        .with_row(Row("Pipeline runs"))
        .with_panel(
            timeseries(
                "Pipeline runs by status",
                "Finished pipeline runs, by model and status (succeeded, failed, cancelled).",
                [
                    (
                        "sum by (model, status) (increase(orchard_retraining_pipeline_runs_total"
                        f"{{{MODEL}}}[$__rate_interval]))",
                        "{{model}} {{status}}",
                    )
                ],
                bars=True,
                width=8,
            )
        )
        .with_panel(
            timeseries(
                "Pipeline run duration",
                "Mean duration of the runs that finished in the last hour, by model.",
                [
                    (
                        "sum by (model) (increase(orchard_retraining_pipeline_run_duration_seconds"
                        f"_sum{{{MODEL}}}[1h])) / sum by (model) (increase("
                        f"orchard_retraining_pipeline_run_duration_seconds_count{{{MODEL}}}[1h]))",
                        "{{model}}",
                    )
                ],
                unit="s",
                width=8,
            )
        )
        .with_panel(
            timeseries(
                "Pipeline runs pending or running",
                "Runs of each model not finished yet.",
                [
                    (
                        f"sum by (model) (orchard_retraining_pipeline_runs_running{{{MODEL}}})",
                        "{{model}}",
                    )
                ],
                width=8,
                min_value=0,
            )
        )
        .with_row(Row("Gates and rollouts"))
        .with_panel(
            timeseries(
                "Quality gate decisions",
                "Candidates judged against the champion, by verdict (passed, failed,"
                " inconclusive, skipped).",
                [
                    (
                        "sum by (model, verdict) (increase(orchard_retraining_gate_decisions_total"
                        f"{{{MODEL}}}[$__rate_interval]))",
                        "{{model}} {{verdict}}",
                    )
                ],
                bars=True,
            )
        )
        .with_panel(
            timeseries(
                "Rollout decisions by action",
                "Rollout decisions (start, advance, promote, rollback, abort, wait, hold, pause,"
                " resume), by model.",
                [
                    (
                        "sum by (model, action) (increase("
                        f"orchard_retraining_rollout_decisions_total{{{MODEL}}}"
                        "[$__rate_interval]))",
                        "{{model}} {{action}}",
                    )
                ],
                bars=True,
            )
        )
        .with_panel(
            timeseries(
                "Active rollouts",
                "Models with an unfinished rollout, by its status (canary, shadowing,"
                " experiment, paused).",
                [
                    (
                        f"sum by (status) (orchard_retraining_rollout_active{{{MODEL}}})",
                        "{{status}}",
                    )
                ],
                width=8,
                min_value=0,
            )
        )
        .with_panel(
            timeseries(
                "Canary weight",
                "Share of each model's traffic its rollout's candidate gets.",
                [
                    (
                        "max by (model) "
                        f"(orchard_retraining_rollout_candidate_weight_percent{{{MODEL}}})",
                        "{{model}}",
                    )
                ],
                unit="percent",
                width=8,
                min_value=0,
                max_value=100,
            )
        )
        .with_panel(
            timeseries(
                "Time since the rollout last changed",
                "Seconds since each model's rollout last changed step or status (a rollout"
                " that stays active while this grows is stuck).",
                [
                    (
                        "time() - max by (model) "
                        f"(orchard_retraining_rollout_last_change_timestamp_seconds{{{MODEL}}})",
                        "{{model}}",
                    )
                ],
                unit="s",
                width=8,
            )
        )
    )
