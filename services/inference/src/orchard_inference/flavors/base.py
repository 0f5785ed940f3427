"""What a flavor provides: a loader that turns an MLflow model directory into a predictor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from orchard_core.oip import NUMPY_DTYPE
from orchard_inference.schema import InputSchema, ModelInput, TensorMeta

if TYPE_CHECKING:
    from mlflow.models import Model as MlflowModel

__all__ = ["ModelLoader", "Outputs", "Predictor", "conform"]

#: A prediction: output name → array (first entry is the primary output, used by KServe v1).
Outputs = dict[str, np.ndarray]


class Predictor(Protocol):
    """A loaded model, ready to compute predictions on validated input."""

    #: The model metadata ``platform`` (``sklearn``, ``pytorch``, ``mlflow``).
    platform: str
    #: The outputs ``predict`` can return, in order; empty when only a prediction can tell.
    outputs: tuple[TensorMeta, ...]

    def predict(self, data: ModelInput, wanted: frozenset[str] | None) -> Outputs:
        """Compute the ``wanted`` outputs (all when None) for a batch of rows.

        Blocking and CPU- or GPU-bound; the data plane decides where it runs.
        """
        ...


class ModelLoader(Protocol):
    """Loads models of one MLflow flavor; registered in order, ``python_function`` last."""

    #: The MLmodel flavor key this loader reads (``sklearn``, ``pytorch``, ``python_function``).
    flavor: str

    def load(self, path: str, model: MlflowModel, schema: InputSchema) -> Predictor:
        """Deserialize the model at ``path`` (blocking; called in a worker thread)."""
        ...


def conform(array: Any, meta: TensorMeta | None) -> np.ndarray:
    """``array`` as numpy, cast to the declared numeric dtype so metadata and data agree."""
    result = np.asarray(array)
    if meta is None or result.dtype.kind not in "biuf":
        return result
    declared = NUMPY_DTYPE.get(meta.datatype)
    if declared is None or declared.kind == "O" or declared == result.dtype:
        return result
    return result.astype(declared)
