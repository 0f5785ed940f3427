"""What retraining needs from each model: its data, fitting, holdout scores and MLflow logging.

Both models work on data frames of their feature columns plus ``label`` (see
:mod:`orchard_pipelines.retrain_data`); each class here turns those into what its estimator
takes. Scores are what the retraining service's quality gate compares: the probability of
default ``(n,)`` for credit-risk (a binary task), softmax probabilities ``(n, 10)`` for digits
(a multiclass one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, Protocol

import mlflow.pytorch
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models.model import ModelInfo
from sklearn.datasets import load_digits
from sklearn.pipeline import Pipeline
from torch import nn

from orchard_pipelines import faults
from orchard_pipelines.datasets import credit_risk as credit_data
from orchard_pipelines.models import credit_risk as credit_model
from orchard_pipelines.models import digits as digits_model
from orchard_pipelines.profiles import ReferenceProfile, build_profile
from orchard_pipelines.retrain_data import LABEL, RetrainData, clean_production_rows

__all__ = ["CreditRisk", "Digits", "GateTask", "RetrainableModel"]

GateTask = Literal["binary", "multiclass"]
_CLASSIFIER_STEP: Final = "classifier"  # the step name in models.credit_risk.build_pipeline


class RetrainableModel(Protocol):
    """One kind of model, as the retraining step drives it."""

    kind: str
    dataset: str
    task: GateTask
    features: tuple[str, ...]

    def reference(self, n_rows: int, seed: int) -> pd.DataFrame:
        """The reference data: feature columns and ``label``."""
        ...

    def production(self, records: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, int]:
        """Usable production rows, cast to the signature, and how many were skipped."""
        ...

    def params(self) -> dict[str, Any]:
        """Model settings to log as run parameters."""
        ...

    def fit(self, data: RetrainData, seed: int) -> Any:
        """Train a candidate on ``data.train``."""
        ...

    def scores(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        """The gate's scores for each row of ``frame``."""
        ...

    def metrics(self, model: Any, frame: pd.DataFrame) -> dict[str, float]:
        """Holdout metrics, as ``orchard_pipelines.train`` logs them."""
        ...

    def holdout_metrics(self, frame: pd.DataFrame) -> dict[str, float]:
        """Metrics of the holdout itself, not of a model (e.g. the oracle's ROC AUC)."""
        ...

    def profile(self, model: Any, train: pd.DataFrame) -> ReferenceProfile:
        """The reference profile of the training rows and the model's outputs on them."""
        ...

    def load(self, model_uri: str) -> Any:
        """Load a registered version (the champion)."""
        ...

    def log(self, model: Any, train: pd.DataFrame, *, defect: str | None) -> ModelInfo:
        """Log ``model`` (or, with ``defect``, its defective stand-in) to the active run."""
        ...


class CreditRisk:
    """The credit-risk pipeline; production rows weigh as much, together, as reference rows."""

    kind = credit_data.NAME
    dataset = credit_data.NAME
    task: GateTask = "binary"
    features: tuple[str, ...] = credit_data.FEATURES

    def reference(self, n_rows: int, seed: int) -> pd.DataFrame:
        """Generated, undrifted rows (``p_true`` kept for the oracle metric)."""
        return credit_data.generate(n_rows, seed=seed)

    def production(self, records: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, int]:
        """Usable production rows, cast to the signature, and how many were skipped."""
        return clean_production_rows(
            records,
            features=self.features,
            n_classes=2,
            integer=credit_data.INTEGER_FEATURES,
            categorical=credit_data.CATEGORICAL_FEATURES,
        )

    def params(self) -> dict[str, Any]:
        """The classifier and its hyperparameters."""
        return {"classifier": "HistGradientBoostingClassifier", **credit_model.HYPERPARAMETERS}

    def fit(self, data: RetrainData, seed: int) -> Pipeline:
        """Fit the pipeline; production rows together weigh as much as reference rows."""
        features = list(self.features)
        return credit_model.build_pipeline(seed).fit(
            data.train[features],
            data.train[LABEL],
            **{f"{_CLASSIFIER_STEP}__sample_weight": data.balanced_weights()},
        )

    def scores(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        """P(default) per row, ``(n,)``."""
        probability = np.asarray(model.predict_proba(frame[list(self.features)]))
        return np.asarray(probability[:, 1], dtype=np.float64)

    def metrics(self, model: Any, frame: pd.DataFrame) -> dict[str, float]:
        """Accuracy, ROC AUC, log loss and Brier score."""
        return credit_model.evaluate(model, frame[list(self.features)], frame[LABEL])

    def holdout_metrics(self, frame: pd.DataFrame) -> dict[str, float]:
        """The oracle's ROC AUC, for generated holdouts only (production rows have no truth)."""
        if "p_true" not in frame:
            return {}
        return {"oracle_roc_auc": credit_model.oracle_roc_auc(frame)}

    def profile(self, model: Any, train: pd.DataFrame) -> ReferenceProfile:
        """Profile as ``orchard_pipelines.train`` does."""
        features = train[list(self.features)]
        return build_profile(
            features,
            categorical=credit_data.CATEGORICAL_FEATURES,
            outputs=pd.DataFrame({credit_model.OUTPUT_NAME: model.predict(features)}),
            categorical_outputs=[credit_model.OUTPUT_NAME],
        )

    def load(self, model_uri: str) -> Any:
        """Load with ``mlflow.sklearn``."""
        return mlflow.sklearn.load_model(model_uri)

    def log(self, model: Any, train: pd.DataFrame, *, defect: str | None) -> ModelInfo:
        """Log with cloudpickle, as ``orchard_pipelines.train`` does."""
        # Explicit requirements skip MLflow's slow inference subprocess; cloudpickle because
        # mlflow-skinny, which serving images install, ships without skops.
        requirements = mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True)
        if defect is None:
            info: ModelInfo = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=credit_model.signature(),
                input_example=train[list(self.features)].head(5),
                pip_requirements=requirements,
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            )
            return info
        stand_in = faults.DefectiveClassifier(classes=np.asarray(model.classes_).tolist())
        with faults.pickled_by_value():
            # No input example: MLflow would load the model to validate it, see it raise, and
            # log a page-long warning that hides the real progress.
            info = mlflow.sklearn.log_model(
                stand_in,
                name="model",
                signature=credit_model.signature(),
                pip_requirements=requirements,
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            )
        return info


class Digits:
    """The digits MLP; production rows are simply added to the training images."""

    kind = "digits"
    dataset = "sklearn-digits"
    task: GateTask = "multiclass"
    features: tuple[str, ...] = digits_model.FEATURES

    def __init__(self, config: digits_model.TrainingConfig | None = None) -> None:
        self.config = config or digits_model.TrainingConfig()

    def reference(self, n_rows: int, seed: int) -> pd.DataFrame:
        """scikit-learn's 1,797 digit images; ``n_rows`` and ``seed`` do not apply."""
        pixels, labels = load_digits(return_X_y=True)
        frame = pd.DataFrame(pixels.astype(np.float64), columns=list(self.features))
        frame[LABEL] = labels.astype(np.int64)
        return frame

    def production(self, records: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, int]:
        """Usable rows; a row may carry ``pixel_0..63`` or one ``pixels`` list of 64 values."""
        return clean_production_rows(
            [_spread_pixels(r) for r in records], features=self.features, n_classes=10
        )

    def params(self) -> dict[str, Any]:
        """The optimiser settings."""
        return {key: getattr(self.config, key) for key in self.config.__dataclass_fields__}

    def fit(self, data: RetrainData, seed: int) -> nn.Sequential:
        """Train the MLP on every training image, reference and production alike."""
        labels = data.train[LABEL].to_numpy(dtype=np.int64)
        return digits_model.fit(self._pixels(data.train), labels, seed=seed, config=self.config)

    def scores(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        """Softmax probabilities, ``(n, 10)``."""
        logits = digits_model.predict_logits(model, self._pixels(frame)).astype(np.float64)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=np.float64)

    def metrics(self, model: Any, frame: pd.DataFrame) -> dict[str, float]:
        """Accuracy and log loss."""
        labels = frame[LABEL].to_numpy(dtype=np.int64)
        return digits_model.evaluate(model, self._pixels(frame), labels)

    def holdout_metrics(self, frame: pd.DataFrame) -> dict[str, float]:
        """None: digits have no known ground-truth probabilities."""
        return {}

    def profile(self, model: Any, train: pd.DataFrame) -> ReferenceProfile:
        """Profile as ``orchard_pipelines.train`` does."""
        pixels = self._pixels(train)
        predicted = digits_model.predict_logits(model, pixels).argmax(axis=1)
        return build_profile(
            pd.DataFrame(pixels, columns=list(self.features)),
            outputs=pd.DataFrame({"prediction": predicted}),
            categorical_outputs=["prediction"],
        )

    def load(self, model_uri: str) -> Any:
        """Load with ``mlflow.pytorch``."""
        return mlflow.pytorch.load_model(model_uri)

    def log(self, model: Any, train: pd.DataFrame, *, defect: str | None) -> ModelInfo:
        """Log a pickled ``nn.Sequential``, as ``orchard_pipelines.train`` does."""
        if defect is not None:
            raise ValueError("the digits model supports no --defect")
        info: ModelInfo = mlflow.pytorch.log_model(
            model,
            name="model",
            signature=digits_model.signature(),
            input_example=self._pixels(train)[:5],
            metadata=digits_model.metadata(),
            pip_requirements=mlflow.pytorch.get_default_pip_requirements(),
            serialization_format="pickle",
        )
        return info

    def _pixels(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(frame[list(self.features)].to_numpy(dtype=np.float32))


def _spread_pixels(record: Mapping[str, Any]) -> Mapping[str, Any]:
    # The serving signature's one tensor input arrives as a list; the export may keep it so.
    pixels = record.get(digits_model.INPUT_NAME)
    if "pixel_0" in record or not isinstance(pixels, list) or len(pixels) != len(Digits.features):
        return record
    return {**record, **dict(zip(Digits.features, pixels, strict=True))}
