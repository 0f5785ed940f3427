"""The sklearn flavor: output names, datatypes and shapes for classifiers and regressors."""

from __future__ import annotations

from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import Model
from sklearn.linear_model import LinearRegression, LogisticRegression

from orchard_inference.flavors import SklearnLoader
from orchard_inference.schema import TensorMeta
from orchard_inference.signature import input_schema

from ..factories import CLOUDPICKLE, CreditModel, credit_frame


def _load(path: Path):  # type: ignore[no-untyped-def]
    model = Model.load(str(path))
    schema = input_schema(model.signature, model.metadata)
    return schema, SklearnLoader().load(str(path), model, schema)


def test_pipeline_outputs_equal_predict_and_predict_proba(credit_model: CreditModel) -> None:
    schema, predictor = _load(credit_model.path)
    frame = credit_frame(40, seed=21)
    outputs = predictor.predict(schema.from_instances(frame.to_numpy().tolist()), None)
    assert list(outputs) == ["predict", "predict_proba"]
    assert outputs["predict"].dtype == np.int64
    np.testing.assert_array_equal(outputs["predict"], credit_model.pipeline.predict(frame))
    np.testing.assert_allclose(
        outputs["predict_proba"], credit_model.pipeline.predict_proba(frame), rtol=1e-12
    )
    only = predictor.predict(
        schema.from_instances(frame.to_numpy().tolist()), frozenset(["predict"])
    )
    assert list(only) == ["predict"]


def test_string_labels_are_bytes_and_regressors_have_no_proba(tmp_path: Path) -> None:
    x = np.arange(20, dtype=np.float64).reshape(10, 2)
    labels = np.array(["low"] * 5 + ["high"] * 5)
    mlflow.sklearn.save_model(
        LogisticRegression().fit(x, labels),
        str(tmp_path / "clf"),
        pip_requirements=["sklearn"],
        serialization_format=CLOUDPICKLE,
    )
    mlflow.sklearn.save_model(
        LinearRegression().fit(x, x.sum(axis=1)),
        str(tmp_path / "reg"),
        pip_requirements=["sklearn"],
        serialization_format=CLOUDPICKLE,
    )

    _, classifier = _load(tmp_path / "clf")
    assert classifier.outputs == (
        TensorMeta("predict", "BYTES", (-1,)),
        TensorMeta("predict_proba", "FP64", (-1, 2)),
    )
    labels_out = classifier.predict(x[:3], None)["predict"]
    assert labels_out.tolist() == ["low", "low", "low"]

    schema, regressor = _load(tmp_path / "reg")
    assert schema.kind == "free"  # saved without a signature
    assert regressor.outputs == (TensorMeta("predict", "FP64", (-1,)),)
    predicted = regressor.predict(pd.DataFrame(x[:2]).to_numpy(), None)
    np.testing.assert_allclose(predicted["predict"], [1.0, 5.0])
