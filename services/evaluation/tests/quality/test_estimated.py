"""CBPE tracks realized quality on calibrated scores; the calibration check catches the rest."""

import json

import numpy as np
import pytest

from orchard_evaluation.quality import (
    check_calibration,
    classification_quality,
    estimate_classification_quality,
)

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def _calibrated_binary(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.beta(2, 2, n)
    return scores, (rng.random(n) < scores).astype(float)


def _calibrated_multiclass(seed: int, n: int, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.full(k, 0.7), n)
    labels = (rng.random(n)[:, None] >= probabilities.cumsum(axis=1)).sum(axis=1)
    return probabilities, np.minimum(labels, k - 1).astype(float)


def _overconfident(scores: np.ndarray) -> np.ndarray:
    # Doubling the logit pushes every score away from 0.5: a typical overfit model.
    return 1 / (1 + np.exp(-2 * np.log(scores / (1 - scores))))


def test_binary_estimate_tracks_realized_metrics_on_calibrated_scores() -> None:
    scores, labels = _calibrated_binary(seed=10, n=20_000)
    reference_scores, reference_labels = _calibrated_binary(seed=11, n=5_000)
    calibration = check_calibration(reference_scores, reference_labels)
    estimate = estimate_classification_quality(scores, calibration=calibration)
    realized = classification_quality(scores, labels)

    # Sampling noise of the realized metrics at n = 20,000 is about 0.005 (one SE).
    for name in METRICS:
        expected = getattr(estimate, name)
        actual = getattr(realized, name).value
        assert expected.value == pytest.approx(actual, abs=0.015), name
        assert expected.lower <= actual <= expected.upper, name
    assert calibration.calibrated is True
    assert estimate.trustworthy is True
    assert "concept drift" in estimate.trust_reason


def test_multiclass_estimate_tracks_realized_metrics_on_calibrated_scores() -> None:
    probabilities, labels = _calibrated_multiclass(seed=12, n=20_000)
    estimate = estimate_classification_quality(probabilities)
    realized = classification_quality(probabilities, labels)

    for name in METRICS:
        assert getattr(estimate, name).value == pytest.approx(
            getattr(realized, name).value, abs=0.015
        ), name
    assert np.sum(estimate.expected_confusion) == pytest.approx(20_000)
    assert estimate.trustworthy is None


def test_intervals_cover_the_realized_metric_at_about_their_level() -> None:
    covered = dict.fromkeys(METRICS, 0)
    seeds = range(40)
    for seed in seeds:
        scores, labels = _calibrated_binary(seed=100 + seed, n=1_000)
        estimate = estimate_classification_quality(scores, n_simulations=200, seed=seed)
        realized = classification_quality(scores, labels)
        for name in METRICS:
            metric = getattr(estimate, name)
            covered[name] += metric.lower <= getattr(realized, name).value <= metric.upper
    # Nominal 95%; 40 draws of a 95% event fall below 34 with probability under 1%.
    for name in METRICS:
        assert covered[name] >= 34, (name, covered[name])


@pytest.mark.parametrize("seed", [20, 21, 22])
def test_calibration_check_flags_miscalibrated_scores(seed: int) -> None:
    scores, labels = _calibrated_binary(seed=seed, n=3_000)
    miscalibrated = _overconfident(scores)

    assert check_calibration(scores, labels).calibrated is True
    flagged = check_calibration(miscalibrated, labels)
    assert flagged.calibrated is False
    assert flagged.ece is not None
    assert flagged.ece > flagged.tolerance
    assert flagged.p_value is not None
    assert flagged.p_value < flagged.alpha

    estimate = estimate_classification_quality(miscalibrated, calibration=flagged)
    assert estimate.trustworthy is False
    # Why the flag matters: the overconfident model overstates its own accuracy.
    realized = classification_quality(miscalibrated, labels).accuracy.value
    assert estimate.accuracy.value is not None
    assert estimate.accuracy.value > realized + 0.03


def test_calibration_check_on_multiclass_scores() -> None:
    probabilities, labels = _calibrated_multiclass(seed=23, n=3_000)
    assert check_calibration(probabilities, labels).calibrated is True

    sharpened = probabilities**3
    sharpened /= sharpened.sum(axis=1, keepdims=True)
    assert check_calibration(sharpened, labels).calibrated is False


def test_small_reference_sample_is_not_called_miscalibrated_for_noise() -> None:
    false_flags = 0
    for seed in range(20):
        scores, labels = _calibrated_binary(seed=200 + seed, n=200)
        false_flags += check_calibration(scores, labels, seed=seed).calibrated is False
    # At alpha 0.05 about one in twenty; allow a little more.
    assert false_flags <= 3


def test_estimate_is_deterministic_and_json_safe() -> None:
    scores, _ = _calibrated_binary(seed=30, n=2_000)
    first = estimate_classification_quality(scores, seed=7).to_dict()
    assert first == estimate_classification_quality(scores, seed=7).to_dict()
    json.dumps(first, allow_nan=False)


def test_degenerate_inputs_give_none_with_reasons() -> None:
    empty = estimate_classification_quality(np.empty(0)).to_dict()
    assert all(m["value"] is None and m["reason"] for m in empty["metrics"].values())

    all_negative = estimate_classification_quality([0.1, 0.2, 0.3])
    assert all_negative.precision.value is None
    assert all_negative.precision.reason is not None
    assert all_negative.accuracy.value == pytest.approx(0.8)
    json.dumps(all_negative.to_dict(), allow_nan=False)

    unlabeled = check_calibration([0.1, 0.9], [None, None])
    assert unlabeled.calibrated is None
    assert estimate_classification_quality([0.4], calibration=unlabeled).trustworthy is None


def test_intervals_can_be_switched_off() -> None:
    scores, _ = _calibrated_binary(seed=31, n=500)
    estimate = estimate_classification_quality(scores, n_simulations=0)
    assert estimate.accuracy.value is not None
    assert estimate.accuracy.lower is None
    assert estimate.accuracy.upper is None


def test_bad_parameters_raise_value_error() -> None:
    scores, labels = _calibrated_binary(seed=32, n=100)
    with pytest.raises(ValueError, match="confidence"):
        estimate_classification_quality(scores, confidence=1.5)
    with pytest.raises(ValueError, match="different number of classes"):
        estimate_classification_quality(
            np.full((3, 3), 1 / 3), calibration=check_calibration(scores, labels)
        )
    with pytest.raises(ValueError, match="alpha"):
        check_calibration(scores, labels, alpha=0)
