"""scikit-learn models (``sklearn`` flavor): ``predict``, and ``predict_proba`` for classifiers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from orchard_inference.flavors.base import Outputs, Predictor, conform
from orchard_inference.schema import InputSchema, ModelInput, TensorMeta
from orchard_inference.signature import output_metadata

if TYPE_CHECKING:
    from mlflow.models import Model as MlflowModel

__all__ = ["PREDICT", "PREDICT_PROBA", "SklearnLoader", "SklearnPredictor"]

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"


class SklearnPredictor:
    """Calls an estimator; a Pipeline's transforms run once even when both outputs are asked."""

    platform = "sklearn"

    def __init__(self, estimator: Any, declared: tuple[TensorMeta, ...]) -> None:
        from sklearn.base import is_classifier
        from sklearn.pipeline import Pipeline

        self._estimator = estimator
        # Split a pipeline into its transforms and its final estimator, so that asking for
        # predict and predict_proba transforms the rows once, not twice.
        if isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
            self._transform: Any = estimator[:-1]
            self._final: Any = estimator.steps[-1][1]
        else:
            self._transform, self._final = None, estimator
        self._proba = is_classifier(estimator) and hasattr(estimator, PREDICT_PROBA)
        declared_predict = next((m for m in declared if m.name == PREDICT), None) or (
            declared[0] if len(declared) == 1 else None
        )
        if declared_predict is not None:
            predict_meta = TensorMeta(PREDICT, declared_predict.datatype, declared_predict.shape)
        else:
            predict_meta = TensorMeta(PREDICT, _label_datatype(estimator), (-1,))
        self._predict_meta = predict_meta
        outputs = [predict_meta]
        if self._proba:
            n_classes = len(getattr(estimator, "classes_", ())) or -1
            outputs.append(TensorMeta(PREDICT_PROBA, "FP64", (-1, n_classes)))
        self.outputs: tuple[TensorMeta, ...] = tuple(outputs)

    def predict(self, data: ModelInput, wanted: frozenset[str] | None) -> Outputs:
        rows = data if self._transform is None else self._transform.transform(data)
        result: Outputs = {}
        if wanted is None or PREDICT in wanted:
            labels = np.asarray(self._final.predict(rows))
            if labels.dtype.kind in "iu":
                labels = labels.astype(np.int64, copy=False)  # labels are INT64 on every OS
            result[PREDICT] = conform(labels, self._predict_meta)
        if self._proba and (wanted is None or PREDICT_PROBA in wanted):
            result[PREDICT_PROBA] = np.asarray(self._final.predict_proba(rows), dtype=np.float64)
        return result


def _label_datatype(estimator: Any) -> str:
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return "FP64"  # a regressor
    kind = np.asarray(classes).dtype.kind
    return {"i": "INT64", "u": "INT64", "b": "BOOL", "f": "FP64"}.get(kind, "BYTES")


class SklearnLoader:
    """Loads the ``sklearn`` flavor with ``mlflow.sklearn``."""

    flavor = "sklearn"

    def load(self, path: str, model: MlflowModel, schema: InputSchema) -> Predictor:
        import mlflow.sklearn

        estimator = mlflow.sklearn.load_model(path)
        return SklearnPredictor(
            estimator, output_metadata(model.signature, PREDICT, model.metadata)
        )
