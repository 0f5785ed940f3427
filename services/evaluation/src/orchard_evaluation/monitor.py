"""Background evaluation: every active model version, on a schedule, into gauges and triggers.

A version is active when it has window profiles in the last ``monitor_window_s``. For each,
one pass computes data and prediction drift over that window (a merge of buckets), quality
over ``quality_window_s`` (realized, estimated, concept drift), exports them as Prometheus
gauges, and offers retraining triggers:

- ``data_drift`` / ``prediction_drift``: the dataset-level drift verdict is True;
- ``concept_drift``: the detector fired on the error stream;
- ``quality_degraded``: realized accuracy (with at least ``min_labels`` labels), else the
  label-free estimate, is more than ``quality_drop_tolerance`` below the version's training
  accuracy (from its reference's metrics) — with evidence: the realized accuracy's one-sided
  95 % Wilson upper bound (or the estimate's band's upper end) must be below that line, so
  a hundred labels that happen to score a little low are not an incident.

The trigger sender deduplicates within its cooldown, so a pass every few minutes raises one
trigger per incident. Gauges of versions no longer active are removed.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from starlette.concurrency import run_in_threadpool

from orchard_core.errors import OrchardError
from orchard_evaluation.db import Database
from orchard_evaluation.drift import DatasetDrift, DriftOptions
from orchard_evaluation.drift_report import drift_of
from orchard_evaluation.quality_report import QualityQuery, evaluate_quality
from orchard_evaluation.references import ReferenceStore
from orchard_evaluation.settings import EvaluationSettings
from orchard_evaluation.triggers import Trigger, TriggerSender
from orchard_evaluation.windows import WindowStore

__all__ = ["Monitor", "MonitorGauges"]

_log = logging.getLogger("orchard.evaluation.monitor")
_PARTS = {"data_drift": "features", "prediction_drift": "outputs"}


class MonitorGauges:
    """The gauges one pass sets; label sets not set again are removed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        version = ["model", "version"]
        self.drift_score = Gauge(
            "orchard_evaluation_drift_score",
            "Drift score per column over the monitoring window (Evidently's default method;"
            " see orchard_evaluation_drift_threshold), part = features or outputs.",
            [*version, "part", "column", "method"],
            registry=registry,
        )
        self.drift_threshold = Gauge(
            "orchard_evaluation_drift_threshold",
            "The threshold the drift score is judged against (p-value methods: drifted when"
            " the score is below it; distances: at or above it).",
            [*version, "part", "column", "method"],
            registry=registry,
        )
        self.drift_detected = Gauge(
            "orchard_evaluation_drift_detected",
            "1 when the column drifted over the monitoring window, 0 when not (absent when"
            " there was not enough data for a verdict).",
            [*version, "part", "column"],
            registry=registry,
        )
        self.drift_share = Gauge(
            "orchard_evaluation_drift_share",
            "Share of columns that drifted over the monitoring window, by part.",
            [*version, "part"],
            registry=registry,
        )
        self.dataset_drift = Gauge(
            "orchard_evaluation_dataset_drift",
            "1 when the drifted share reached the dataset threshold (0.5), else 0.",
            [*version, "part"],
            registry=registry,
        )
        self.window_rows = Gauge(
            "orchard_evaluation_window_rows",
            "Prediction rows in the monitoring window's profiles.",
            version,
            registry=registry,
        )
        self.quality = Gauge(
            "orchard_evaluation_quality",
            "Quality over the quality window: source realized (from labels) or estimated"
            " (label-free, CBPE), by metric (accuracy, f1, roc_auc, ...).",
            [*version, "source", "metric"],
            registry=registry,
        )
        self.reference_quality = Gauge(
            "orchard_evaluation_reference_quality",
            "The version's holdout metrics at training time (the baseline for quality drops).",
            [*version, "metric"],
            registry=registry,
        )
        self.label_coverage = Gauge(
            "orchard_evaluation_label_coverage",
            "Share of the quality window's predictions that have a label.",
            version,
            registry=registry,
        )
        self.label_delay = Gauge(
            "orchard_evaluation_label_delay_seconds",
            "Delay from prediction to label over the quality window, by quantile (0.5, 0.9).",
            [*version, "quantile"],
            registry=registry,
        )
        self.concept_drift = Gauge(
            "orchard_evaluation_concept_drift_detected",
            "1 when the concept drift detector fired on the quality window's error stream.",
            version,
            registry=registry,
        )
        self.last_pass = Gauge(
            "orchard_evaluation_monitor_last_pass_timestamp_seconds",
            "When the background evaluation last finished a pass over every active version.",
            registry=registry,
        )
        self._set: dict[Gauge, set[tuple[str, ...]]] = {}
        self._previous: dict[Gauge, set[tuple[str, ...]]] = {}

    def set(self, gauge: Gauge, labels: tuple[str, ...], value: float) -> None:
        """Set one child and remember it was set in this pass."""
        gauge.labels(*labels).set(value)
        self._set.setdefault(gauge, set()).add(labels)

    def finish_pass(self) -> None:
        """Remove the children set in the previous pass but not in this one."""
        for gauge, before in self._previous.items():
            for labels in before - self._set.get(gauge, set()):
                gauge.remove(*labels)
        self._previous, self._set = self._set, {}
        self.last_pass.set_to_current_time()


@dataclass(frozen=True)
class VersionResult:
    """What one pass found for one version, and the triggers it offered."""

    model: str
    version: str
    triggers: list[str]


class Monitor:
    """See the module docs; :meth:`run_pass` is one pass."""

    def __init__(
        self,
        database: Database,
        windows: WindowStore,
        references: ReferenceStore,
        triggers: TriggerSender,
        gauges: MonitorGauges,
        settings: EvaluationSettings,
    ) -> None:
        self._db = database
        self._windows = windows
        self._references = references
        self._triggers = triggers
        self._gauges = gauges
        self._settings = settings

    async def run_pass(self, now: float | None = None) -> list[VersionResult]:
        """Evaluate every active version once."""
        at = time.time() if now is None else now
        results = []
        for model, version in await run_in_threadpool(self._active, at):
            try:
                results.append(await self._evaluate(model, version, at))
            except Exception:
                _log.exception("evaluating %s version %s failed", model, version)
        self._gauges.finish_pass()
        return results

    def _active(self, now: float) -> list[tuple[str, str]]:
        return self._windows.active_versions(now - self._settings.monitor_window_s)

    async def _evaluate(self, model: str, version: str, now: float) -> VersionResult:
        settings = self._settings
        offered: list[str] = []
        data, prediction, n_rows = await run_in_threadpool(
            drift_of,
            self._windows,
            self._references,
            model,
            version,
            now - settings.monitor_window_s,
            None,
            DriftOptions(min_rows=settings.drift_min_rows),
        )
        self._gauges.set(self._gauges.window_rows, (model, version), n_rows)
        for kind, result in (("data_drift", data), ("prediction_drift", prediction)):
            self._drift_gauges(model, version, _PARTS[kind], result)
            if result.dataset_drifted:
                drifted = [c for c in result.columns if c.drifted]
                reason = (
                    f"{len(drifted)} of {result.number_of_columns} {_PARTS[kind]} drifted"
                    f" (share {result.drift_share:.2f} >= {result.share_threshold:g})"
                )
                details = {"window_s": settings.monitor_window_s, **result.to_dict()}
                if await self._offer(Trigger(model, version, kind, reason, details), now):
                    offered.append(kind)
        offered.extend(await self._quality(model, version, now))
        return VersionResult(model, version, offered)

    def _drift_gauges(self, model: str, version: str, part: str, result: DatasetDrift) -> None:
        g = self._gauges
        for column in result.columns:
            if column.score is not None and column.method is not None:
                labels = (model, version, part, column.column, column.method)
                g.set(g.drift_score, labels, column.score)
                if column.threshold is not None:
                    g.set(g.drift_threshold, labels, column.threshold)
            if column.drifted is not None:
                g.set(g.drift_detected, (model, version, part, column.column), column.drifted)
        if result.drift_share is not None:
            g.set(g.drift_share, (model, version, part), result.drift_share)
        if result.dataset_drifted is not None:
            g.set(g.dataset_drift, (model, version, part), result.dataset_drifted)

    async def _quality(self, model: str, version: str, now: float) -> list[str]:
        settings = self._settings
        query = QualityQuery(
            model,
            version,
            since=now - settings.quality_window_s,
            concept_method=settings.concept_drift_method,
        )
        try:
            report = await run_in_threadpool(evaluate_quality, self._db, query)
        except OrchardError as exc:  # no predictions, no usable score: nothing to judge
            _log.debug("no quality for %s version %s: %s", model, version, exc)
            return []
        g = self._gauges
        labels = report["realized"]["labels"]
        g.set(g.label_coverage, (model, version), labels["coverage"] or 0.0)
        for quantile, key in (("0.5", "delay_median_s"), ("0.9", "delay_p90_s")):
            if labels.get(key) is not None:
                g.set(g.label_delay, (model, version, quantile), labels[key])
        for source in ("realized", "estimated"):
            for metric, value in (report.get(source) or {}).get("metrics", {}).items():
                if value.get("value") is not None:
                    g.set(g.quality, (model, version, source, metric), value["value"])
        concept = report["concept_drift"]
        g.set(g.concept_drift, (model, version), concept["drift_detected"])
        reference = self._references.get(model, version)
        baseline = (reference.metrics if reference else {}).get("accuracy")
        if baseline is not None:
            g.set(g.reference_quality, (model, version, "accuracy"), baseline)
        offered = []
        if concept["drift_detected"]:
            reason = (
                f"{concept['method']} fired on the error stream: error rate "
                f"{_pct(concept['error_rate_before'])} before, {_pct(concept['error_rate_after'])}"
                " after"
            )
            if await self._offer(Trigger(model, version, "concept_drift", reason, concept), now):
                offered.append("concept_drift")
        drop = self._quality_drop(report, labels["n_labeled"], baseline)
        if drop is not None and await self._offer(
            Trigger(model, version, "quality_degraded", drop[0], drop[1]), now
        ):
            offered.append("quality_degraded")
        return offered

    def _quality_drop(
        self, report: dict[str, Any], n_labeled: int, baseline: float | None
    ) -> tuple[str, dict[str, Any]] | None:
        if baseline is None:
            return None
        realized = report["realized"]["metrics"].get("accuracy", {}).get("value")
        estimated = (report.get("estimated") or {}).get("metrics", {}).get("accuracy", {})
        if realized is not None and n_labeled >= self._settings.min_labels:
            source, value = "realized", realized
        elif estimated.get("value") is not None:
            source, value = "estimated", estimated["value"]
        else:
            return None
        limit = baseline - self._settings.quality_drop_tolerance
        upper = _wilson_upper(value, n_labeled) if source == "realized" else estimated.get("upper")
        if value >= limit or (upper is not None and upper >= limit):
            return None
        reason = (
            f"{source} accuracy {value:.3f} is below the training accuracy {baseline:.3f}"
            f" minus {self._settings.quality_drop_tolerance:g}"
        )
        details = {
            "source": source,
            "accuracy": value,
            "baseline": baseline,
            "tolerance": self._settings.quality_drop_tolerance,
            "n_labeled": n_labeled,
            "upper_bound": upper,
        }
        return reason, details

    async def _offer(self, trigger: Trigger, now: float) -> bool:
        return await self._triggers.offer(trigger, now) is not None


def _wilson_upper(share: float, n: int, z: float = 1.645) -> float:
    """The one-sided 95 % Wilson score upper bound of a proportion seen as ``share`` of ``n``."""
    if n <= 0:
        return 1.0
    centre = share + z * z / (2 * n)
    spread = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
