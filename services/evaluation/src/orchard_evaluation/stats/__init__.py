"""Statistics behind canary verdicts and A/B experiments.

Inputs are mergeable per-arm summaries (``ProportionSummary``, ``MeanSummary``) so that a
verdict over any time range is a merge of stored window summaries. Every decision is valid
under continuous monitoring (mixture SPRT / confidence sequences, Johari et al. 2017;
Howard et al. 2021; Waudby-Smith et al. 2023; Lindon & Malek 2022), and every result has a
JSON-safe ``to_dict()``.
"""

from orchard_evaluation.stats.comparison import (
    DEFAULT_PLANNED_N,
    Comparison,
    compare_means,
    compare_proportions,
)
from orchard_evaluation.stats.quantiles import (
    QuantileComparison,
    compare_quantiles,
    exceedance_summary,
)
from orchard_evaluation.stats.srm import SrmResult, srm_check
from orchard_evaluation.stats.summaries import MeanSummary, ProportionSummary
from orchard_evaluation.stats.verdict import (
    CanaryVerdict,
    Direction,
    OverallVerdict,
    Verdict,
    canary_verdict,
    combine_verdicts,
)

__all__ = [
    "DEFAULT_PLANNED_N",
    "CanaryVerdict",
    "Comparison",
    "Direction",
    "MeanSummary",
    "OverallVerdict",
    "ProportionSummary",
    "QuantileComparison",
    "SrmResult",
    "Verdict",
    "canary_verdict",
    "combine_verdicts",
    "compare_means",
    "compare_proportions",
    "compare_quantiles",
    "exceedance_summary",
    "srm_check",
]
