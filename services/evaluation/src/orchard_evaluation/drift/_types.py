"""Drift options and results."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias, cast

DriftMethod: TypeAlias = Literal["wasserstein", "jensenshannon", "psi", "ks", "chisquare", "z"]

# Evidently's default thresholds: distances drift at score >= threshold, p-values below it.
DEFAULT_THRESHOLDS: Final[dict[DriftMethod, float]] = {
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
}
P_VALUE_METHODS: Final[frozenset[DriftMethod]] = frozenset({"ks", "chisquare", "z"})
# Evidently's allowed column kinds for a method chosen by name (its defaults go further: chi-square
# and Z also judge numeric columns with at most 5 distinct values).
METHOD_KINDS: Final[dict[DriftMethod, frozenset[str]]] = {
    "wasserstein": frozenset({"numeric"}),
    "ks": frozenset({"numeric"}),
    "chisquare": frozenset({"categorical"}),
    "z": frozenset({"categorical"}),
    "jensenshannon": frozenset({"numeric", "categorical"}),
    "psi": frozenset({"numeric", "categorical"}),
}
# The distances' sampling noise shrinks like 1/sqrt(n): two samples of one normal distribution
# (a reference of 5,000) differ by a normed Wasserstein distance of 0.1 or more in 72% of
# current windows of 100 values, 15% of 300 and 4.5% of 500. Fewer than this give no verdict;
# the service asks for more (ORCHARD_EVALUATION_DRIFT_MIN_ROWS).
DEFAULT_MIN_ROWS: Final = 100
DEFAULT_SHARE_THRESHOLD: Final = 0.5


@dataclass(frozen=True)
class DriftOptions:
    """How to judge drift.

    Attributes:
        methods: Column name to method, overriding Evidently's default choice.
        thresholds: Column name to threshold, overriding the method's default.
        min_rows: Fewest current values (non-missing) a column needs for a verdict.
        min_reference_rows: Fewest reference values (non-missing) it needs.
        share_threshold: The data set drifts when at least this share of columns drift.

    Raises:
        ValueError: An unknown method, a non-finite threshold, ``min_rows`` < 1 or a share
            outside (0, 1].
    """

    methods: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    min_rows: int = DEFAULT_MIN_ROWS
    min_reference_rows: int = DEFAULT_MIN_ROWS
    share_threshold: float = DEFAULT_SHARE_THRESHOLD

    def __post_init__(self) -> None:
        for column, method in self.methods.items():
            if method not in DEFAULT_THRESHOLDS:
                raise ValueError(
                    f"unknown drift method {method!r} for column {column!r}; "
                    f"known methods: {', '.join(DEFAULT_THRESHOLDS)}"
                )
        for column, threshold in self.thresholds.items():
            if not math.isfinite(threshold):
                raise ValueError(f"threshold for column {column!r} must be finite, got {threshold}")
        if self.min_rows < 1 or self.min_reference_rows < 1:
            raise ValueError(
                f"min_rows and min_reference_rows must be >= 1, got {self.min_rows}"
                f" and {self.min_reference_rows}"
            )
        if not 0 < self.share_threshold <= 1:
            raise ValueError(f"share_threshold must be in (0, 1], got {self.share_threshold}")

    def method_for(self, column: str) -> DriftMethod | None:
        """The method named for ``column``, or None for Evidently's default."""
        method = self.methods.get(column)
        return None if method is None else cast(DriftMethod, method)


@dataclass(frozen=True)
class ColumnDrift:
    """The verdict on one column; ``drifted`` is None (with a ``reason``) when there is none.

    ``score`` is the method's statistic as Evidently reports it: a distance for Wasserstein,
    Jensen-Shannon and PSI, the p-value for KS, chi-square and Z (then also in ``p_value``).
    """

    column: str
    kind: Literal["numeric", "categorical"]
    method: DriftMethod | None
    score: float | None
    threshold: float | None
    drifted: bool | None
    reference_count: int
    current_count: int
    p_value: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data."""
        return {
            "column": self.column,
            "kind": self.kind,
            "method": self.method,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "reference_count": self.reference_count,
            "current_count": self.current_count,
            "p_value": self.p_value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class DatasetDrift:
    """Per-column verdicts and the data set's verdict.

    ``dataset_drifted`` is True when the drifted share reaches ``share_threshold`` (Evidently:
    ``share >= drift_share``), False when it stays below even if every column without a verdict
    had drifted, and None otherwise, so missing data never reads as "no drift".
    """

    columns: tuple[ColumnDrift, ...]
    share_threshold: float = DEFAULT_SHARE_THRESHOLD

    @property
    def number_of_columns(self) -> int:
        """Columns judged or not."""
        return len(self.columns)

    @property
    def number_of_drifted_columns(self) -> int:
        """Columns with ``drifted`` True."""
        return sum(1 for c in self.columns if c.drifted)

    @property
    def number_of_inconclusive_columns(self) -> int:
        """Columns without a verdict."""
        return sum(1 for c in self.columns if c.drifted is None)

    @property
    def drift_share(self) -> float | None:
        """Drifted columns over all columns; None without columns."""
        if not self.columns:
            return None
        return self.number_of_drifted_columns / self.number_of_columns

    @property
    def dataset_drifted(self) -> bool | None:
        """See the class docstring."""
        share = self.drift_share
        if share is None:
            return None
        if share >= self.share_threshold:
            return True
        worst = (self.number_of_drifted_columns + self.number_of_inconclusive_columns) / len(
            self.columns
        )
        return None if worst >= self.share_threshold else False

    def column(self, name: str) -> ColumnDrift:
        """The verdict on column ``name``.

        Raises:
            KeyError: No such column.
        """
        for column in self.columns:
            if column.column == name:
                return column
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data."""
        return {
            "number_of_columns": self.number_of_columns,
            "number_of_drifted_columns": self.number_of_drifted_columns,
            "number_of_inconclusive_columns": self.number_of_inconclusive_columns,
            "drift_share": self.drift_share,
            "share_threshold": self.share_threshold,
            "dataset_drifted": self.dataset_drifted,
            "columns": [c.to_dict() for c in self.columns],
        }
