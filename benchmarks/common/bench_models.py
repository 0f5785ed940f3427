"""The two benchmark models, trained in-process (no MLflow server) and saved as MLflow models.

Both are Orchard's demo models, built with ``orchard_pipelines``' own functions: the
credit-risk scikit-learn Pipeline and the digits ``nn.Sequential``. They are saved once into
the bench work directory and reused while their folder holds an ``MLmodel`` file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Final

import numpy as np

__all__ = ["MODEL_NAMES", "payload", "prepare_models", "write_payloads"]

MODEL_NAMES: Final = ("credit-risk", "digits")
_SEED: Final = 42
_log = logging.getLogger("bench.models")


def prepare_models(models_dir: Path) -> dict[str, Path]:
    """Train and save any model not yet saved under ``models_dir``; return {name: folder}."""
    paths = {name: models_dir / name for name in MODEL_NAMES}
    if not (paths["credit-risk"] / "MLmodel").is_file():
        _save_credit_risk(paths["credit-risk"])
    if not (paths["digits"] / "MLmodel").is_file():
        _save_digits(paths["digits"])
    return paths


def _save_credit_risk(path: Path) -> None:
    import mlflow.sklearn

    from orchard_pipelines.datasets import credit_risk as data
    from orchard_pipelines.models import credit_risk as model

    _log.info("training credit-risk into %s", path)
    frame = data.generate(20_000, seed=_SEED)
    features = list(data.FEATURES)
    pipeline = model.build_pipeline(_SEED).fit(frame[features], frame[data.TARGET])
    mlflow.sklearn.save_model(
        pipeline,
        str(path),
        signature=model.signature(),
        # Explicit requirements skip MLflow's slow dependency-inference subprocess.
        pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
    )


def _save_digits(path: Path) -> None:
    import mlflow.pytorch
    from sklearn.datasets import load_digits

    from orchard_pipelines.models import digits as model

    _log.info("training digits into %s", path)
    pixels, labels = load_digits(return_X_y=True)
    module = model.fit(pixels.astype(np.float32), labels.astype(np.int64), seed=_SEED)
    mlflow.pytorch.save_model(
        module,
        str(path),
        signature=model.signature(),
        metadata=model.metadata(),
        pip_requirements=mlflow.pytorch.get_default_pip_requirements(),
        serialization_format="pickle",
    )


def payload(model: str) -> dict[str, Any]:
    """The OIP v2 request body both servers get for ``model``: one row."""
    if model == "credit-risk":
        from orchard_pipelines.datasets import credit_risk as data

        row = data.generate(1, seed=7).iloc[0]
        inputs = []
        for name in data.FEATURES:
            value: str | int | float
            if name in data.CATEGORICAL_FEATURES:
                datatype, value = "BYTES", str(row[name])
            elif name in data.INTEGER_FEATURES:
                datatype, value = "INT64", int(row[name])
            else:
                datatype, value = "FP64", float(row[name])
            inputs.append({"name": name, "shape": [1], "datatype": datatype, "data": [value]})
        return {"inputs": inputs}
    if model == "digits":
        from sklearn.datasets import load_digits

        from orchard_pipelines.models import digits

        image = load_digits().data[0].astype(np.float32)
        return {
            "inputs": [
                {
                    "name": digits.INPUT_NAME,
                    "shape": [1, digits.N_PIXELS],
                    "datatype": "FP32",
                    "data": image.tolist(),
                }
            ]
        }
    raise ValueError(f"unknown model {model!r}; known: {', '.join(MODEL_NAMES)}")


def write_payloads(work_dir: Path) -> dict[str, Path]:
    """Write each model's request body to ``work_dir``; return {name: file}."""
    files = {}
    for name in MODEL_NAMES:
        file = work_dir / f"{name}.json"
        file.write_text(json.dumps(payload(name)))
        files[name] = file
    return files
