"""Realized metrics agree with sklearn.metrics and degrade to None, never NaN or errors."""

import json

import numpy as np
import pytest
from sklearn import metrics

from orchard_evaluation.quality import classification_quality, regression_quality


def _binary_data(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Rounded scores create ties, which AUC must count as one half like sklearn does.
    scores = np.round(rng.beta(2, 2, n), 2)
    labels = (rng.random(n) < scores).astype(float)
    labels[rng.random(n) < 0.3] = np.nan
    return scores, labels


def _multiclass_data(seed: int, n: int = 2000, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.ones(k), n)
    labels = (rng.random(n)[:, None] >= probabilities.cumsum(axis=1)).sum(axis=1)
    return probabilities, np.minimum(labels, k - 1).astype(float)


def _json_round_trip(data: dict) -> dict:
    return json.loads(json.dumps(data, allow_nan=False))


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_binary_metrics_match_sklearn(threshold: float) -> None:
    scores, labels = _binary_data(seed=1)
    result = classification_quality(scores, labels, threshold=threshold)

    seen = ~np.isnan(labels)
    y, p = labels[seen], scores[seen]
    predicted = p >= threshold
    assert result.task == "binary"
    assert result.accuracy.value == pytest.approx(metrics.accuracy_score(y, predicted))
    assert result.precision.value == pytest.approx(metrics.precision_score(y, predicted))
    assert result.recall.value == pytest.approx(metrics.recall_score(y, predicted))
    assert result.f1.value == pytest.approx(metrics.f1_score(y, predicted))
    assert result.roc_auc.value == pytest.approx(metrics.roc_auc_score(y, p))
    assert result.log_loss.value == pytest.approx(metrics.log_loss(y, p))


def test_two_column_probabilities_read_as_binary() -> None:
    scores, labels = _binary_data(seed=2)
    as_matrix = classification_quality(np.column_stack([1 - scores, scores]), labels)
    assert as_matrix.to_dict() == classification_quality(scores, labels).to_dict()


def test_multiclass_macro_metrics_match_sklearn() -> None:
    probabilities, labels = _multiclass_data(seed=3)
    result = classification_quality(probabilities, labels)

    predicted = probabilities.argmax(axis=1)
    assert result.task == "multiclass"
    assert result.n_classes == 4
    assert result.accuracy.value == pytest.approx(metrics.accuracy_score(labels, predicted))
    for name, scorer in [
        ("precision", metrics.precision_score),
        ("recall", metrics.recall_score),
        ("f1", metrics.f1_score),
    ]:
        expected = scorer(labels, predicted, average="macro", zero_division=0)
        assert getattr(result, name).value == pytest.approx(expected)
    expected_auc = metrics.roc_auc_score(labels, probabilities, multi_class="ovr")
    assert result.roc_auc.value == pytest.approx(expected_auc)
    assert result.log_loss.value == pytest.approx(metrics.log_loss(labels, probabilities))


def test_multiclass_auc_skips_classes_missing_from_the_labels() -> None:
    probabilities, labels = _multiclass_data(seed=4, k=3)
    keep = labels != 2
    result = classification_quality(probabilities[keep], labels[keep])

    per_class = [metrics.roc_auc_score(labels[keep] == c, probabilities[keep, c]) for c in (0, 1)]
    assert result.roc_auc.value == pytest.approx(np.mean(per_class))


def test_coverage_and_label_delay() -> None:
    prediction_ts = np.arange(10, dtype=float) * 100
    labels = [1, None, 0, None, 1, None, None, 0, None, None]
    delays = {0: 10.0, 2: 20.0, 4: 30.0, 7: 40.0}
    label_ts = [prediction_ts[i] + delays[i] if i in delays else None for i in range(10)]
    result = classification_quality(
        np.full(10, 0.7), labels, prediction_ts=prediction_ts, label_ts=label_ts
    )

    assert result.labels.n_predictions == 10
    assert result.labels.n_labeled == 4
    assert result.labels.coverage == pytest.approx(0.4)
    assert result.labels.delay_median_s == pytest.approx(25.0)
    assert result.labels.delay_p90_s == pytest.approx(np.percentile([10, 20, 30, 40], 90))


def test_no_labels_gives_none_with_a_reason() -> None:
    result = classification_quality([0.2, 0.8, 0.6], [None, np.nan, None])

    data = _json_round_trip(result.to_dict())
    assert data["labels"]["coverage"] == 0.0
    for metric in data["metrics"].values():
        assert metric == {"value": None, "reason": "no labeled predictions"}


def test_empty_window_has_no_coverage() -> None:
    result = classification_quality(np.empty(0), np.empty(0))
    assert result.labels.coverage is None
    assert result.accuracy.value is None


def test_single_class_leaves_auc_undefined_and_the_rest_defined() -> None:
    result = classification_quality([0.9, 0.2, 0.7], [1, 1, 1])

    assert result.roc_auc.value is None
    assert result.roc_auc.reason == "labels contain a single class"
    assert result.accuracy.value == pytest.approx(2 / 3)
    assert result.recall.value == pytest.approx(2 / 3)
    assert result.log_loss.value is not None


def test_no_positive_predictions_leaves_precision_undefined() -> None:
    result = classification_quality([0.1, 0.2, 0.3], [0, 1, 0])

    assert result.precision.value is None
    assert result.precision.reason is not None
    assert result.f1.value == 0.0
    json.dumps(result.to_dict(), allow_nan=False)


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(5)
    predictions = rng.normal(size=500)
    labels = predictions + rng.normal(scale=0.5, size=500)
    labels[::7] = np.nan
    result = regression_quality(predictions, labels)

    seen = ~np.isnan(labels)
    mae = metrics.mean_absolute_error(labels[seen], predictions[seen])
    rmse = metrics.root_mean_squared_error(labels[seen], predictions[seen])
    assert result.mae.value == pytest.approx(mae)
    assert result.rmse.value == pytest.approx(rmse)
    assert result.labels.coverage == pytest.approx(seen.mean())


def test_regression_without_labels() -> None:
    data = _json_round_trip(regression_quality([1.0, 2.0], [None, None]).to_dict())
    assert data["metrics"]["mae"]["value"] is None
    assert data["metrics"]["rmse"]["reason"] == "no labeled predictions"


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.2, 0.8], [0, 2], "class labels"),
        ([0.2, 0.8], [0, 0.5], "class labels"),
        ([0.2, 0.8], [0], "rows"),
        ([0.2, 1.5], [0, 1], r"\[0, 1\]"),
        ([0.2, np.nan], [0, 1], "NaN"),
        ([[0.2, 0.2, 0.2], [0.1, 0.1, 0.8]], [0, 1], "sum to 1"),
    ],
)
def test_malformed_input_raises_value_error(scores: list, labels: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classification_quality(scores, labels)
