"""Any other MLflow model, through the generic ``python_function`` (pyfunc) interface."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from orchard_inference.flavors.base import Outputs, Predictor, conform
from orchard_inference.schema import InputSchema, ModelInput, TensorMeta
from orchard_inference.signature import output_metadata

if TYPE_CHECKING:
    from mlflow.models import Model as MlflowModel

__all__ = ["PyfuncLoader", "PyfuncPredictor"]

_DEFAULT_OUTPUT = "predict"


class PyfuncPredictor:
    """Calls ``PyFuncModel.predict`` and names what comes back after the signature."""

    platform = "mlflow"

    def __init__(self, model: Any, outputs: tuple[TensorMeta, ...]) -> None:
        self._model = model
        self.outputs = outputs
        self._first = outputs[0].name if outputs else _DEFAULT_OUTPUT

    def _named(self, raw: Any) -> dict[str, Any]:
        if isinstance(raw, pd.DataFrame):
            if raw.shape[1] == 1 and len(self.outputs) <= 1:
                return {self._first: raw.iloc[:, 0].to_numpy()}
            return {str(column): raw[column].to_numpy() for column in raw.columns}
        if isinstance(raw, pd.Series):
            return {self._first: raw.to_numpy()}
        if isinstance(raw, dict):
            return {str(k): v for k, v in raw.items()}
        return {self._first: raw}

    def predict(self, data: ModelInput, wanted: frozenset[str] | None) -> Outputs:
        named = self._named(self._model.predict(data))
        metas = {m.name: m for m in self.outputs}
        result: Outputs = {}
        for name, value in named.items():
            if wanted is None or name in wanted:
                array = conform(value, metas.get(name))
                result[name] = array.astype(object) if array.dtype.kind in "US" else array
        return result


class PyfuncLoader:
    """The fallback: loads any model that has a ``python_function`` flavor."""

    flavor = "python_function"

    def load(self, path: str, model: MlflowModel, schema: InputSchema) -> Predictor:
        import mlflow.pyfunc

        pyfunc = mlflow.pyfunc.load_model(path)
        return PyfuncPredictor(
            pyfunc, output_metadata(model.signature, _DEFAULT_OUTPUT, model.metadata)
        )
