"""Data factories: small real MLflow models (saved to disk) and OIP v2 / v1 request bodies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pytorch
import mlflow.sklearn
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema, TensorSpec
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

# mlflow-skinny, the runtime's dependency, ships without skops (MLflow's default format).
CLOUDPICKLE = mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE

CREDIT_COLUMNS = ("age", "income", "purpose")
PIXELS = 64
CLASSES = 10


def credit_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows shaped like the credit-risk features: long, double and string columns."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows).astype(np.int64),
            "income": rng.normal(50_000, 12_000, rows),
            "purpose": rng.choice(["car", "house", "education"], rows),
        }
    )


def credit_signature() -> ModelSignature:
    return ModelSignature(
        inputs=Schema(
            [
                ColSpec(DataType.long, "age"),
                ColSpec(DataType.double, "income"),
                ColSpec(DataType.string, "purpose"),
            ]
        ),
        outputs=Schema([ColSpec(DataType.long, "prediction")]),
    )


def credit_pipeline(seed: int = 0) -> Pipeline:
    """A fitted ColumnTransformer + LogisticRegression pipeline with integer labels."""
    frame = credit_frame(300, seed)
    labels = ((frame["age"] > 45) ^ (frame["purpose"] == "car")).astype(np.int64)
    preprocess = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), ["purpose"]),
            ("numeric", StandardScaler(), ["age", "income"]),
        ]
    )
    pipeline = Pipeline([("preprocess", preprocess), ("classifier", LogisticRegression())])
    return pipeline.fit(frame, labels)


def save_credit_model(path: Path, pipeline: Pipeline) -> Path:
    # pip_requirements given: inferring them starts a subprocess and takes seconds.
    mlflow.sklearn.save_model(
        pipeline,
        str(path),
        signature=credit_signature(),
        pip_requirements=["scikit-learn"],
        serialization_format=CLOUDPICKLE,
    )
    return path


def digits_signature(input_name: str | None = None) -> ModelSignature:
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, PIXELS), input_name)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, CLASSES), "logits")]),
    )


def digits_network(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    network = torch.nn.Sequential(
        torch.nn.Linear(PIXELS, 32), torch.nn.ReLU(), torch.nn.Linear(32, CLASSES)
    )
    return network.eval()


def save_digits_model(
    path: Path, network: torch.nn.Module, *, serialization_format: str = "pickle"
) -> Path:
    """Saved like orchard_pipelines does: unnamed input, its name in the MLmodel metadata."""
    example = np.zeros((2, PIXELS), dtype=np.float32) if serialization_format == "pt2" else None
    mlflow.pytorch.save_model(
        network,
        str(path),
        signature=digits_signature(),
        metadata={"input_name": "pixels", "output_name": "logits"},
        serialization_format=serialization_format,
        input_example=example,
        pip_requirements=["torch"],
    )
    return path


def digits_pixels(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 16, (rows, PIXELS)).astype(np.float32)


def logits_of(network: torch.nn.Module, pixels: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        result: np.ndarray = network(torch.from_numpy(pixels)).numpy()
        return result


@dataclass(frozen=True)
class CreditModel:
    path: Path
    pipeline: Pipeline


@dataclass(frozen=True)
class DigitsModel:
    path: Path
    network: torch.nn.Module


def column_body(frame: pd.DataFrame, *, two_d: bool = False, **extra: Any) -> dict[str, Any]:
    """One OIP v2 input per column: INT64 / FP64 / BYTES by the column's dtype."""
    inputs = []
    for column in frame.columns:
        values = frame[column]
        kind = values.dtype.kind
        datatype = "BYTES" if kind in "OUT" else "INT64" if kind in "iu" else "FP64"
        shape = [len(frame), 1] if two_d else [len(frame)]
        inputs.append(
            {"name": column, "shape": shape, "datatype": datatype, "data": values.tolist()}
        )
    return {"inputs": inputs, **extra}


def tensor_body(
    array: np.ndarray, *, name: str = "pixels", datatype: str = "FP32", **extra: Any
) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype,
                "data": array.reshape(-1).tolist(),
            }
        ],
        **extra,
    }
