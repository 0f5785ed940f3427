"""Data and prediction drift from mergeable profiles, with Evidently 0.7's default rules.

Verdicts are computed from :mod:`orchard_core.profiles` summaries (a reference profile and a
merge of window profiles, or two windows), never from raw rows, and agree with Evidently's
``DataDriftPreset`` on the same data (see tests/drift/test_evidently_agreement.py).

Evidently's defaults, as found in ``evidently.legacy.calculations.stattests`` (0.7.23); counts
are of non-missing, finite values, distinct values are counted over both sides together:

- reference <= 1000 values: numeric with > 5 distinct values: Kolmogorov-Smirnov; numeric
  with 3-5 or categorical with > 2: chi-square; numeric or categorical with <= 2: Z test
  (all drift at p-value < 0.05; KS at <= 0.05);
- reference > 1000 values: numeric with > 5 distinct values: Wasserstein distance normed by
  the reference std (floored at 0.001); otherwise Jensen-Shannon distance (natural log);
  both drift at score >= 0.1;
- Jensen-Shannon and PSI bin numeric columns by value when the reference has <= 20 distinct
  values, else into Sturges bins over both sides' range; categories seen on one side only
  count as zero on the other (PSI then fills zeroes as Evidently does);
- the data set drifts when the drifted share of columns is >= 0.5.
"""

from orchard_evaluation.drift._detect import column_drift, default_method, detect_drift
from orchard_evaluation.drift._summaries import ColumnSummary
from orchard_evaluation.drift._types import (
    DEFAULT_MIN_ROWS,
    DEFAULT_SHARE_THRESHOLD,
    DEFAULT_THRESHOLDS,
    ColumnDrift,
    DatasetDrift,
    DriftMethod,
    DriftOptions,
)

__all__ = [
    "DEFAULT_MIN_ROWS",
    "DEFAULT_SHARE_THRESHOLD",
    "DEFAULT_THRESHOLDS",
    "ColumnDrift",
    "ColumnSummary",
    "DatasetDrift",
    "DriftMethod",
    "DriftOptions",
    "column_drift",
    "default_method",
    "detect_drift",
]
