"""Model quality with and without labels.

* :mod:`~orchard_evaluation.quality.realized`: metrics once labels have arrived, with label
  coverage and delay.
* :mod:`~orchard_evaluation.quality.estimated`: a label-free estimate for calibrated
  classifiers (CBPE), trusted only after :func:`check_calibration` on reference data.
* :mod:`~orchard_evaluation.quality.concept`: concept drift detectors on the error stream.
"""

from orchard_evaluation.quality._common import MetricValue
from orchard_evaluation.quality.calibration import CalibrationCheck, check_calibration
from orchard_evaluation.quality.concept import (
    ConceptDriftResult,
    detect_concept_drift,
    detector_methods,
)
from orchard_evaluation.quality.error_stream import (
    ErrorStream,
    classification_error_stream,
    regression_error_stream,
)
from orchard_evaluation.quality.estimated import (
    EstimatedMetric,
    EstimatedQuality,
    estimate_classification_quality,
)
from orchard_evaluation.quality.realized import (
    ClassificationQuality,
    LabelStats,
    RegressionQuality,
    classification_quality,
    regression_quality,
)

__all__ = [
    "CalibrationCheck",
    "ClassificationQuality",
    "ConceptDriftResult",
    "ErrorStream",
    "EstimatedMetric",
    "EstimatedQuality",
    "LabelStats",
    "MetricValue",
    "RegressionQuality",
    "check_calibration",
    "classification_error_stream",
    "classification_quality",
    "detect_concept_drift",
    "detector_methods",
    "estimate_classification_quality",
    "regression_error_stream",
    "regression_quality",
]
