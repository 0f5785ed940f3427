"""Evidently's own verdicts on raw data, in this package's terms: the yardstick that the
profile-based drift detection is checked against (tests, the benchmark).

Runs ``Report([DataDriftPreset()], include_tests=True)`` with the column types declared, and
reads back per column the method (named as :data:`~orchard_evaluation.drift.DEFAULT_THRESHOLDS`
names them), score, threshold and verdict, and the data set's verdict.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["EVIDENTLY_METHODS", "EvidentlyDrift", "evidently_drift"]

#: Evidently's method names → ours.
EVIDENTLY_METHODS: Final = {
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "PSI": "psi",
}


@dataclass(frozen=True)
class EvidentlyDrift:
    """Evidently's verdicts: ``columns[name]`` has method, score, threshold and drifted."""

    columns: dict[str, dict[str, Any]]
    drift_share: float | None
    dataset_drifted: bool | None


def evidently_drift(
    reference: Any, current: Any, numeric: Sequence[str], categorical: Sequence[str]
) -> EvidentlyDrift:
    """Run Evidently's ``DataDriftPreset`` on two pandas frames with the given column types."""
    with warnings.catch_warnings():
        # evidently 0.7 trips deprecations in its own and its dependencies' code (numpy.core,
        # litestar) at import and while running; nothing of ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(
            numerical_columns=list(numeric), categorical_columns=list(categorical)
        )
        snapshot = Report([DataDriftPreset()], include_tests=True).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        data = snapshot.dict()
    columns: dict[str, dict[str, Any]] = {}
    share: float | None = None
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "method": EVIDENTLY_METHODS.get(config["method"], config["method"]),
                "score": float(metric["value"]),
                "threshold": config["threshold"],
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            share = metric["value"]["share"]
    dataset: bool | None = None
    for test in data["tests"]:
        if test["name"].startswith("Share of Drifted Columns"):
            dataset = test["status"] == "FAIL"
        elif test["name"].startswith("Value Drift for column "):
            name = test["name"].removeprefix("Value Drift for column ")
            columns.setdefault(name, {})["drifted"] = test["status"] == "FAIL"
    return EvidentlyDrift(columns, share, dataset)
