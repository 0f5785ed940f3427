"""GET /v1/experiments/{id}: A/B decisions from simulated traffic, and their validity.

The HTTP tests post numpy-simulated traffic (fixed seeds) and read the report. The
simulation tests run the analysis' own statistics (``arm_summary`` then ``canary_verdict``, as
``analyze_experiment`` does) on experiments looked at ``LOOKS`` times as units accrue, with
sticky units that send several correlated requests each.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from orchard_evaluation.experiments import arm_summary
from orchard_evaluation.stats import (
    Direction,
    MeanSummary,
    Verdict,
    canary_verdict,
    compare_means,
)

from ..conftest import Evaluation
from ..factories import event, label

EXPERIMENT = "exp-42"


async def _post(evaluation: Evaluation, events: list[dict[str, Any]], feedback: list[Any]) -> None:
    for start in range(0, len(events), 5_000):
        response = await evaluation.client.post("/v1/events", json=events[start : start + 5_000])
        assert response.status_code < 300, response.text
    for start in range(0, len(feedback), 5_000):
        response = await evaluation.client.post(
            "/v1/feedback", json=feedback[start : start + 5_000]
        )
        assert response.status_code < 300, response.text


async def _value_traffic(
    evaluation: Evaluation,
    rng: np.random.Generator,
    arm: str,
    units: int,
    mean_value: float,
    *,
    version: str | None = None,
    requests_per_unit: int = 2,
) -> None:
    """``units`` sticky units of one arm, each sending requests with an exponential value."""
    events, feedback = [], []
    for u in range(units):
        for r in range(requests_per_unit):
            request_id = f"{arm}-{u}-{r}"
            events.append(
                event(
                    request_id,
                    version=version or arm,
                    route_arm=arm,
                    experiment=EXPERIMENT,
                    unit=f"{arm}-user-{u}",
                    ts=1_000.0 + u + r * 0.1,
                )
            )
            feedback.append({"request_id": request_id, "value": float(rng.exponential(mean_value))})
    await _post(evaluation, events, feedback)


async def _report(evaluation: Evaluation, **params: Any) -> dict[str, Any]:
    response = await evaluation.client.get(f"/v1/experiments/{EXPERIMENT}", params=params)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def test_a_treatment_earning_more_value_passes(evaluation: Evaluation) -> None:
    rng = np.random.default_rng(42)
    await _value_traffic(evaluation, rng, "control", 1_000, 1.00, version="1")
    await _value_traffic(evaluation, rng, "treatment", 1_000, 1.25, version="2")
    report = await _report(evaluation)
    assert report["metric"] == "value"
    assert report["metric_source"].startswith("auto")
    assert report["control"] == {"arm": "control", "chosen_by": "the arm named 'control'"}
    assert report["analysis"]["clustered"] is True  # two requests per sticky unit
    arms = {arm["arm"]: arm for arm in report["arms"]}
    assert arms["treatment"]["versions"] == ["2"]
    assert arms["treatment"]["requests"] == 2_000
    assert arms["treatment"]["units"] == 1_000
    assert arms["treatment"]["coverage"] == 1.0
    [comparison] = report["comparisons"]
    assert comparison["verdict"] == "PASS", comparison
    assert 0.15 < comparison["difference"] < 0.35
    assert comparison["fixed_horizon"]["ci_low"] > 0
    assert comparison["fixed_horizon"]["p_value"] < 0.001
    assert comparison["always_valid"]["cs_low"] > 0
    assert comparison["always_valid"]["p_value"] <= 0.05
    assert report["srm"]["verdict"] == "PASS"
    assert report["srm"]["weights_source"].startswith("default: equal weights")


async def test_equal_arms_are_inconclusive_with_plenty_of_data(evaluation: Evaluation) -> None:
    rng = np.random.default_rng(7)
    await _value_traffic(evaluation, rng, "control", 1_500, 1.0)
    await _value_traffic(evaluation, rng, "treatment", 1_500, 1.0)
    [comparison] = (await _report(evaluation))["comparisons"]
    assert comparison["verdict"] == "INCONCLUSIVE"
    assert comparison["sample_sizes"] == {"control": 1_500, "arm": 1_500}
    cs = comparison["always_valid"]
    assert cs["cs_low"] < 0 < cs["cs_high"]


async def test_too_little_data_is_inconclusive(evaluation: Evaluation) -> None:
    rng = np.random.default_rng(8)
    await _value_traffic(evaluation, rng, "control", 30, 1.0)
    await _value_traffic(evaluation, rng, "treatment", 30, 5.0)
    [comparison] = (await _report(evaluation))["comparisons"]
    assert comparison["verdict"] == "INCONCLUSIVE"
    assert "too few observations" in comparison["reason"]


async def test_accuracy_from_labels_against_the_champion(evaluation: Evaluation) -> None:
    rng = np.random.default_rng(3)
    events, labels = [], []
    for arm, version, accuracy in (("champion", "1", 0.70), ("arm-2", "2", 0.80)):
        for i in range(1_500):
            request_id = f"{arm}-{i}"
            predicted = int(rng.uniform() < 0.5)
            # The challenger answers with probabilities: accuracy is their argmax.
            outputs: dict[str, Any] = (
                {"prediction": [predicted]}
                if arm == "champion"
                else {"predict_proba": [0.3, 0.7] if predicted else [0.7, 0.3]}
            )
            events.append(
                event(
                    request_id,
                    version=version,
                    route_arm=arm,
                    experiment=EXPERIMENT,
                    outputs=outputs,
                    ts=1_000.0 + i,
                )
            )
            if i % 5:  # 80% of predictions get their ground truth back
                right = rng.uniform() < accuracy
                labels.append(label(request_id, predicted if right else 1 - predicted))
    await _post(evaluation, events, labels)
    report = await _report(evaluation)
    assert report["metric"] == "accuracy"  # no feedback values: auto picks accuracy
    assert report["control"]["arm"] == "champion"
    assert report["analysis"]["clustered"] is False  # no units: each request is its own
    arms = {arm["arm"]: arm for arm in report["arms"]}
    assert arms["arm-2"]["coverage"] == 0.8
    assert arms["arm-2"]["n"] == 1_200
    assert abs(arms["champion"]["estimate"] - 0.70) < 0.04
    assert abs(arms["arm-2"]["estimate"] - 0.80) < 0.04
    [comparison] = report["comparisons"]
    assert comparison["method"].startswith("score (Farrington-Manning)")
    assert comparison["verdict"] == "PASS", comparison
    assert comparison["fixed_horizon"]["ci_low"] > 0


async def test_a_split_far_from_the_configured_weights_is_flagged(evaluation: Evaluation) -> None:
    rng = np.random.default_rng(5)
    await _value_traffic(evaluation, rng, "control", 700, 1.0, requests_per_unit=1)
    await _value_traffic(evaluation, rng, "treatment", 300, 1.0, requests_per_unit=1)
    weights = orjson.dumps({"control": 0.5, "treatment": 0.5}).decode()
    srm = (await _report(evaluation, weights=weights))["srm"]
    assert srm["verdict"] == "FAIL"
    assert srm["mismatch"] is True
    assert srm["sample_sizes"] == {"control": 700, "treatment": 300}
    assert srm["weights_source"] == "weights parameter"
    as_configured = orjson.dumps({"control": 0.7, "treatment": 0.3}).decode()
    assert (await _report(evaluation, weights=as_configured))["srm"]["verdict"] == "PASS"


async def test_bad_experiment_requests_are_4xx(evaluation: Evaluation) -> None:
    assert (await evaluation.client.get("/v1/experiments/nope")).status_code == 404
    rng = np.random.default_rng(6)
    await _value_traffic(evaluation, rng, "control", 10, 1.0)
    await _value_traffic(evaluation, rng, "treatment", 10, 1.0)
    url = f"/v1/experiments/{EXPERIMENT}"
    for params in (
        {"weights": "not json"},
        {"weights": '{"control": -1, "treatment": 1}'},
        {"weights": '{"control": 1}'},  # treatment has traffic but no weight
        {"control": "nobody"},
        {"metric": "revenue"},
        {"alpha": 2},
    ):
        response = await evaluation.client.get(url, params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"]


# --- Statistical validity of the decisions under repeated looks -------------------------------

ALPHA = 0.05
LOOKS = 20
UNITS_PER_LOOK = 50  # per arm: 1,000 units per arm by the last look
FloatArray = np.typing.NDArray[np.float64]


def _units(rng: np.random.Generator, n: int, mean: float) -> tuple[FloatArray, ...]:
    """Per unit: its request count, and the sum and sum of squares of its requests' values.

    Each unit sends 1 + Poisson(4) requests with exponential values around its own mean
    (gamma frailty), so one unit's values are correlated (intra-unit correlation 1/3)."""
    counts = 1 + rng.poisson(4.0, n)
    frailty = np.repeat(rng.gamma(1.0, mean, n), counts)
    values = rng.exponential(frailty)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sums = np.add.reduceat(values, starts)
    squares = np.add.reduceat(values**2, starts)
    return counts.astype(np.float64), sums, squares


def _looks(
    rng: np.random.Generator, lift: float, per_look: int = UNITS_PER_LOOK
) -> tuple[list[Verdict], float]:
    """One experiment watched ``LOOKS`` times: the verdict at each look, and the smallest
    always-valid p-value had the requests been (wrongly) taken as independent."""
    c_k, c_s, c_q = _units(rng, LOOKS * per_look, 1.0)
    t_k, t_s, t_q = _units(rng, LOOKS * per_look, 1.0 + lift)
    verdicts, naive = [], 1.0
    for look in range(1, LOOKS + 1):
        m = look * per_look
        control = arm_summary(c_s[:m], c_k[:m], proportion=False, clustered=True)
        treatment = arm_summary(t_s[:m], t_k[:m], proportion=False, clustered=True)
        decided = canary_verdict(
            "value",
            control,
            treatment,
            direction=Direction.HIGHER_IS_BETTER,
            min_samples=100,
            alpha=ALPHA,
            planned_n=2 * LOOKS * per_look,
        )
        verdicts.append(decided.verdict)
        by_request = compare_means(
            MeanSummary.from_moments(int(c_k[:m].sum()), c_s[:m].sum(), c_q[:m].sum()),
            MeanSummary.from_moments(int(t_k[:m].sum()), t_s[:m].sum(), t_q[:m].sum()),
            alpha=ALPHA,
            planned_n=2 * LOOKS * per_look,
        )
        naive = min(naive, by_request.always_valid_p_value)
    return verdicts, naive


def test_false_alarm_rate_of_ab_decisions_stays_below_alpha_across_looks() -> None:
    """No change; 20 looks of 50 more units per arm (1,000 units, ~5,000 requests per arm).

    1,000 replicates: the Monte-Carlo SE of a rate near alpha is sqrt(.05 * .95 / 1000) ~
    0.0069, so the bound is alpha + 3 SE ~ 0.071. Observed: a false PASS or FAIL at any look
    in 0.9-1.6% of experiments (2,000 replicates: 0.0085). The same looks taking requests as
    independent (the always-valid test on request-level means) false-alarm in ~25%: the
    clustering the unit-level delta method accounts for.
    """
    rng = np.random.default_rng(20261127)
    replicates = 1_000
    false_alarm = naive_alarm = 0
    for _ in range(replicates):
        verdicts, naive = _looks(rng, 0.0)
        false_alarm += any(v is not Verdict.INCONCLUSIVE for v in verdicts)
        naive_alarm += naive <= ALPHA
    rate = false_alarm / replicates
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / replicates)
    assert rate <= bound, f"false-alarm rate {rate:.4f} (bound {bound:.4f})"
    assert naive_alarm / replicates > 0.15, f"request-level rate only {naive_alarm / replicates}"


def test_a_ten_percent_value_lift_is_detected_with_stated_power() -> None:
    """Mean value +10%; 20 looks of 250 more units per arm (5,000 units, ~25,000 requests per
    arm by the last look, planned_n = 10,000 units): PASS at some look in >= 80% of 300
    replicates (observed 0.86), and FAIL in none."""
    rng = np.random.default_rng(3)
    replicates = 300
    passed = failed = 0
    for _ in range(replicates):
        verdicts, _ = _looks(rng, 0.10, per_look=250)
        passed += Verdict.PASS in verdicts
        failed += Verdict.FAIL in verdicts
    power = passed / replicates
    assert power >= 0.80, f"power {power:.3f}"
    assert failed == 0
