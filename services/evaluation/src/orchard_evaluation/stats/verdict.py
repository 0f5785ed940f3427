"""Canary verdicts: non-inferiority read off an always-valid confidence sequence.

With ``d = candidate - baseline`` and the level-``1-alpha`` confidence sequence ``[lo, hi]``
(``comparison``), and "worse" meaning ``d > margin`` (lower is better) or ``d < -margin``
(higher is better):

* FAIL when the whole sequence is worse than the margin (``lo > margin`` / ``hi < -margin``);
* PASS when the whole sequence is better than the margin (``hi < margin`` / ``lo > -margin``):
  non-inferiority;
* INCONCLUSIVE otherwise, and whenever an arm has fewer than ``min_samples`` observations.

Because the sequence holds at every look simultaneously, polling at every step keeps
``P(FAIL while the candidate is within the margin) <= alpha`` and likewise for a false PASS.
``margin=0`` turns PASS into superiority, which is what an A/B arm-vs-control decision needs.

Several signals (error rate, p99 tail, accuracy, ...) are combined by ``combine_verdicts``: any
FAIL fails, all PASS passes, anything else is INCONCLUSIVE. Split the family's alpha over the
``k`` signals (Bonferroni: ``alpha / k`` each); ``OverallVerdict.family_alpha`` reports the
resulting bound on the chance of any false FAIL (and of a false PASS).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orchard_evaluation.stats._json import finite
from orchard_evaluation.stats.comparison import (
    DEFAULT_PLANNED_N,
    Comparison,
    compare_means,
    compare_proportions,
)
from orchard_evaluation.stats.summaries import MeanSummary, ProportionSummary

__all__ = [
    "CanaryVerdict",
    "Direction",
    "OverallVerdict",
    "Verdict",
    "canary_verdict",
    "combine_verdicts",
]


class Verdict(StrEnum):
    """The outcome of an automated decision."""

    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


class Direction(StrEnum):
    """Which way is better for a metric."""

    LOWER_IS_BETTER = "lower_is_better"
    HIGHER_IS_BETTER = "higher_is_better"


@dataclass(frozen=True, slots=True)
class CanaryVerdict:
    """One signal's verdict, with what it was decided on."""

    metric: str
    verdict: Verdict
    reason: str
    direction: Direction
    margin: float
    alpha: float
    min_samples: int
    baseline_n: int
    candidate_n: int
    comparison: Comparison | None

    @property
    def threshold(self) -> float:
        """The difference past which the candidate counts as worse (``+margin`` or ``-margin``)."""
        return self.margin if self.direction is Direction.LOWER_IS_BETTER else -self.margin

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data: statistic (difference and sequence), threshold, verdict."""
        comparison = self.comparison
        return {
            "metric": self.metric,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "direction": self.direction.value,
            "statistic": finite(comparison.difference) if comparison else None,
            "confidence_sequence": (
                [finite(v) for v in comparison.confidence_sequence] if comparison else None
            ),
            "threshold": self.threshold,
            "margin": self.margin,
            "alpha": self.alpha,
            "min_samples": self.min_samples,
            "sample_sizes": {"baseline": self.baseline_n, "candidate": self.candidate_n},
            "comparison": comparison.to_dict() if comparison else None,
        }


def canary_verdict(
    metric: str,
    baseline: ProportionSummary | MeanSummary,
    candidate: ProportionSummary | MeanSummary,
    *,
    direction: Direction,
    margin: float = 0.0,
    min_samples: int = 100,
    alpha: float = 0.05,
    planned_n: int = DEFAULT_PLANNED_N,
) -> CanaryVerdict:
    """Judge one metric of a canary against the concurrently serving baseline.

    ``margin`` is absolute, in the metric's units (0.01 = one percentage point of error rate;
    milliseconds for a mean latency). Proportions use ``compare_proportions``, means
    ``compare_means``; both arms must be the same kind.

    Raises:
        ValueError: mixed summary kinds, a negative margin, or ``min_samples`` below what the
            comparison needs (1 for proportions, 2 for means).
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    kinds = (ProportionSummary, MeanSummary)
    if type(baseline) is not type(candidate) or not isinstance(baseline, kinds):
        raise ValueError("baseline and candidate must both be ProportionSummary or MeanSummary")
    least = 2 if isinstance(baseline, MeanSummary) else 1
    if min_samples < least:
        raise ValueError(f"min_samples must be >= {least}, got {min_samples}")
    common: dict[str, Any] = {
        "metric": metric,
        "direction": Direction(direction),
        "margin": float(margin),
        "alpha": alpha,
        "min_samples": min_samples,
        "baseline_n": baseline.n,
        "candidate_n": candidate.n,
    }
    if min(baseline.n, candidate.n) < min_samples:
        reason = (
            f"too few samples (baseline {baseline.n}, candidate {candidate.n};"
            f" need {min_samples} each)"
        )
        return CanaryVerdict(verdict=Verdict.INCONCLUSIVE, reason=reason, comparison=None, **common)
    if isinstance(baseline, ProportionSummary) and isinstance(candidate, ProportionSummary):
        comparison = compare_proportions(baseline, candidate, alpha=alpha, planned_n=planned_n)
    elif isinstance(baseline, MeanSummary) and isinstance(candidate, MeanSummary):
        comparison = compare_means(baseline, candidate, alpha=alpha, planned_n=planned_n)
    else:
        raise ValueError("baseline and candidate must both be ProportionSummary or MeanSummary")
    low, high = comparison.confidence_sequence
    # Flip "higher is better" onto "lower is better": worse always means a larger value.
    if common["direction"] is Direction.HIGHER_IS_BETTER:
        low, high = -high, -low
    if low > margin:
        verdict, reason = Verdict.FAIL, "candidate is worse than baseline by more than the margin"
    elif high < margin:
        verdict, reason = Verdict.PASS, "candidate is not worse than baseline by the margin"
    else:
        verdict, reason = Verdict.INCONCLUSIVE, "confidence sequence still contains the margin"
    return CanaryVerdict(verdict=verdict, reason=reason, comparison=comparison, **common)


@dataclass(frozen=True, slots=True)
class OverallVerdict:
    """Several signals combined: any FAIL fails, all PASS passes, else INCONCLUSIVE."""

    verdict: Verdict
    signals: tuple[CanaryVerdict, ...]

    @property
    def family_alpha(self) -> float:
        """Bonferroni bound on the chance that any signal gives a false FAIL (or PASS)."""
        return min(1.0, sum(signal.alpha for signal in self.signals))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data with every signal's own decision."""
        return {
            "verdict": self.verdict.value,
            "family_alpha": self.family_alpha,
            "correction": "bonferroni",
            "signals": [signal.to_dict() for signal in self.signals],
        }


def combine_verdicts(signals: Iterable[CanaryVerdict]) -> OverallVerdict:
    """Combine signals; no signals at all is INCONCLUSIVE (no evidence is never a PASS)."""
    collected = tuple(signals)
    verdicts = {signal.verdict for signal in collected}
    if Verdict.FAIL in verdicts:
        overall = Verdict.FAIL
    elif collected and verdicts == {Verdict.PASS}:
        overall = Verdict.PASS
    else:
        overall = Verdict.INCONCLUSIVE
    return OverallVerdict(verdict=overall, signals=collected)
