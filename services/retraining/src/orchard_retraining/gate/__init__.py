"""The quality gate: a retrained candidate against the champion on the same holdout.

Pure decision logic, no I/O: the caller brings the holdout's labels and both models' scores on
it; recording the outcome and moving the ``challenger`` alias are someone else's.

Method. For every judged metric the statistic is the paired difference
``d = metric(candidate) - metric(champion)`` on the holdout. Its confidence interval comes from a
*paired* nonparametric bootstrap over holdout rows: each resample draws ``n`` row indices with
replacement and both models are scored on those same rows, so the interval reflects the
correlation between the two models' errors (far narrower than two independent intervals). The
index matrix of a block of resamples is turned into a row-count matrix ``W`` (resamples x rows);
every metric is then a few matrix products with per-row vectors (``W @ correct / n`` for
accuracy, ``W @ loss / n`` for log loss, true/false positive counts for F1, ...), so 2,000
resamples of a 5,000-row holdout take about 0.1 s (mostly drawing the indices), and several
metrics share one set of resamples. ROC AUC uses the Mann-Whitney
statistic with ties counted half, evaluated on the weighted rows: the negatives are sorted by
score once (``O(n log n)``), and per resample a cumulative sum of negative weights plus a gather
at each positive's precomputed position gives the AUC in ``O(n)`` — ``O(B n)`` for ``B``
resamples, no per-resample sort. The interval is the percentile interval at ``confidence``;
percentile rather than BCa because BCa's jackknife costs ``n`` more metric evaluations per
metric, and the paired differences of these averaged metrics are close to symmetric on holdouts
of a useful size (the tests check coverage by simulation).

Decision. With the interval oriented so that positive means "candidate better" (``[lo, hi]``),
``margin`` the tolerated loss ("the candidate may be at most ``margin`` worse") and
``min_improvement`` an optional required gain, both in the metric's own units:

* PASS when ``lo >= -margin`` (non-inferior) and, when ``min_improvement`` is set,
  ``lo >= min_improvement``;
* FAIL when the whole interval is worse than the margin: ``hi < -margin``;
* INCONCLUSIVE otherwise — including a candidate that is not worse beyond the margin but not
  shown to gain ``min_improvement`` — and whenever the data cannot support a decision: a holdout
  under ``min_holdout`` rows, non-finite scores, one class only for ROC AUC.

The gate passes only when every judged metric is PASS; INCONCLUSIVE never passes (no evidence is
not a PASS). Requiring every metric to pass is an intersection-union test, so the chance of a
false PASS stays at ``1 - confidence`` without splitting it over the metrics; the chance of a
false FAIL on *some* metric grows with their number (raise ``confidence`` to limit it).
"""

from __future__ import annotations

from orchard_retraining.gate._evaluate import evaluate_gate
from orchard_retraining.gate._types import (
    METRICS,
    Direction,
    GateConfig,
    GateResult,
    MetricResult,
    MetricRule,
    Task,
    Verdict,
)

__all__ = [
    "METRICS",
    "Direction",
    "GateConfig",
    "GateResult",
    "MetricResult",
    "MetricRule",
    "Task",
    "Verdict",
    "evaluate_gate",
]
