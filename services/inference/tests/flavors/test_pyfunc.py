"""Models of other flavors are served through mlflow.pyfunc."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema

from orchard_core.oip import decode_infer_response

from ..conftest import MakeRuntime


class Scorer(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Two outputs as DataFrame columns: a score and a label."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        score = model_input["x"] * 2.0
        return pd.DataFrame({"score": score, "label": np.where(score > 1, "high", "low")})


async def test_a_python_function_model_serves_each_dataframe_column_as_an_output(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    signature = ModelSignature(
        inputs=Schema([ColSpec(DataType.double, "x")]),
        outputs=Schema([ColSpec(DataType.double, "score"), ColSpec(DataType.string, "label")]),
    )
    path = tmp_path / "scorer"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=Scorer(),
        signature=signature,
        input_example=pd.DataFrame({"x": [1.0]}),
        pip_requirements=["mlflow"],
    )
    async with make_runtime({"scorer": str(path)}) as runtime:
        metadata = (await runtime.client.get("/v2/models/scorer")).json()
        assert metadata["platform"] == "mlflow"
        assert [o["name"] for o in metadata["outputs"]] == ["score", "label"]
        body = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [0, 1, 2]}]}
        reply = await runtime.client.post("/v2/models/scorer/infer", json=body)
        assert reply.status_code == 200, reply.text
        score, label = decode_infer_response(reply.content).outputs
        assert (score.name, score.datatype, score.data.tolist()) == ("score", "FP64", [0, 2, 4])
        assert (label.name, label.datatype, label.data.tolist()) == (
            "label",
            "BYTES",
            ["low", "high", "high"],
        )
        v1 = await runtime.client.post("/v1/models/scorer:predict", json={"instances": [[0.25]]})
        assert v1.json() == {"predictions": [0.5]}
