"""river's detectors on the error stream: they catch a rise in errors and stay quiet otherwise."""

import json

import numpy as np
import pytest

from orchard_evaluation.quality import (
    ErrorStream,
    classification_error_stream,
    detect_concept_drift,
    detector_methods,
    regression_error_stream,
)

CHANGE = 2_000
SEEDS = range(20)
# Detection delay (points after the change) that each detector meets on a 10% -> 30% jump;
# measured worst cases over these seeds: ADWIN 175, DDM 273, Page-Hinkley 320.
MAX_DELAY = {"adwin": 300, "ddm": 400, "page_hinkley": 600}


def _jump(seed: int) -> ErrorStream:
    rng = np.random.default_rng(seed)
    errors = np.r_[rng.random(CHANGE) < 0.1, rng.random(CHANGE) < 0.3].astype(float)
    return ErrorStream(errors, 1_700_000_000.0 + np.arange(errors.size))


def _stationary(seed: int, n: int = 5_000) -> ErrorStream:
    rng = np.random.default_rng(seed)
    return ErrorStream((rng.random(n) < 0.1).astype(float))


@pytest.mark.parametrize("method", ["adwin", "ddm", "page_hinkley"])
def test_error_rate_jump_is_detected_after_the_change(method: str) -> None:
    for seed in SEEDS:
        result = detect_concept_drift(_jump(seed), method)
        after = [i for i in result.detection_indices if i >= CHANGE]
        assert after, (method, seed)
        assert after[0] - CHANGE <= MAX_DELAY[method], (method, seed, after[0])


@pytest.mark.parametrize("method", ["adwin", "page_hinkley"])
def test_quiet_detectors_report_the_change_itself(method: str) -> None:
    stream = _jump(seed=3)
    result = detect_concept_drift(stream, method)

    assert result.drift_detected
    assert result.first_detection_index is not None
    assert result.first_detection_index >= CHANGE
    assert result.first_detection_ts == stream.timestamps[result.first_detection_index]
    assert result.last_detection_ts == stream.timestamps[result.last_detection_index]
    first = result.first_detection_index
    assert result.error_rate_before == pytest.approx(stream.errors[:first].mean())
    assert result.error_rate_after == pytest.approx(stream.errors[first:].mean())
    # "Before" holds the detection delay's worth of post-change errors, hence not exactly 10%.
    assert result.error_rate_before < 0.15 < 0.25 < result.error_rate_after


@pytest.mark.parametrize(
    ("method", "max_per_stream", "max_total"),
    # ADWIN and Page-Hinkley raised none over these seeds. DDM at its defaults raised 27
    # over 20 streams (at most 5 in one): its running-minimum baseline is known to be jumpy.
    [("adwin", 0, 0), ("page_hinkley", 0, 0), ("ddm", 5, 30)],
)
def test_stationary_stream_raises_few_false_alarms(
    method: str, max_per_stream: int, max_total: int
) -> None:
    counts = [detect_concept_drift(_stationary(seed), method).n_detections for seed in SEEDS]
    assert max(counts) <= max_per_stream
    assert sum(counts) <= max_total


def test_stricter_ddm_threshold_cuts_its_false_alarms() -> None:
    params = {"drift_threshold": 4.0}
    counts = [detect_concept_drift(_stationary(s), "ddm", params).n_detections for s in SEEDS]
    # Four over the same 20 streams, at the price of a slower detection.
    assert sum(counts) <= 5


def test_rerun_over_the_same_window_gives_the_same_result() -> None:
    stream = _jump(seed=5)
    for method in detector_methods():
        first = detect_concept_drift(stream, method).to_dict()
        assert first == detect_concept_drift(stream, method).to_dict()
        json.dumps(first, allow_nan=False)


def test_result_reports_method_and_effective_parameters() -> None:
    result = detect_concept_drift(_stationary(0, n=100), "Page-Hinkley", {"threshold": 25.0})
    assert result.method == "page_hinkley"
    assert result.params["threshold"] == 25.0
    assert result.params["min_instances"] == 30
    assert not result.drift_detected
    assert result.error_rate_after is None
    assert result.error_rate_before == pytest.approx(_stationary(0, n=100).errors.mean())


def test_classification_error_stream_sorts_by_time_and_drops_unlabeled() -> None:
    stream = classification_error_stream(
        scores=[0.9, 0.2, 0.7, 0.4],
        labels=[0, 0, None, 0],
        prediction_ts=[30.0, 10.0, 20.0, 5.0],
    )
    assert stream.timestamps is not None
    assert stream.timestamps.tolist() == [5.0, 10.0, 30.0]
    assert stream.errors.tolist() == [0.0, 0.0, 1.0]


def test_regression_errors_work_with_adwin_but_not_ddm() -> None:
    rng = np.random.default_rng(7)
    truth = rng.normal(size=3_000)
    noise = np.r_[rng.normal(scale=0.2, size=1_500), rng.normal(scale=1.0, size=1_500)]
    stream = regression_error_stream(truth + noise, truth)

    result = detect_concept_drift(stream, "adwin")
    assert result.first_detection_index is not None
    assert result.first_detection_index >= 1_500
    with pytest.raises(ValueError, match="0/1"):
        detect_concept_drift(stream, "ddm")


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("kswin", {}, "unknown concept drift method"),
        ("adwin", {"delta": 2.0}, "delta"),
        ("adwin", {"window": 10}, "unknown parameter"),
        ("ddm", {"warm_start": 0}, "warm_start"),
        ("ddm", {"warm_start": True}, "warm_start"),
        ("ddm", {"drift_threshold": "3"}, "drift_threshold"),
        ("page_hinkley", {"threshold": float("inf")}, "threshold"),
        ("page_hinkley", {"mode": "sideways"}, "mode"),
    ],
)
def test_bad_configuration_raises_value_error(method: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        detect_concept_drift(_stationary(0, n=10), method, params)


def test_numpy_parameters_are_accepted_and_reported_as_plain_numbers() -> None:
    params = {"clock": np.int64(16), "delta": np.float32(0.01)}
    result = detect_concept_drift(_jump(seed=1), "adwin", params)
    assert result.params["clock"] == 16
    assert result.params["delta"] == pytest.approx(0.01)
    json.dumps(result.to_dict(), allow_nan=False)


def test_bad_streams_raise_value_error() -> None:
    with pytest.raises(ValueError, match="chronological"):
        detect_concept_drift(ErrorStream(np.zeros(3), np.array([3.0, 2.0, 1.0])))
    with pytest.raises(ValueError, match="finite"):
        detect_concept_drift(ErrorStream(np.array([0.0, np.nan])))
    with pytest.raises(ValueError, match="finite"):
        detect_concept_drift(ErrorStream(np.zeros(2), np.array([1.0, np.nan])))
    with pytest.raises(ValueError, match="finite"):
        classification_error_stream([0.2, 0.8], [0, 1], prediction_ts=[1.0, None])
