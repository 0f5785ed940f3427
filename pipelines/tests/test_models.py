"""The model definitions on their own, without MLflow: quality, determinism, signatures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlflow.types import DataType
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from orchard_pipelines.datasets.credit_risk import (
    CATEGORICAL_FEATURES,
    FEATURES,
    NUMERIC_FEATURES,
    TARGET,
    generate,
)
from orchard_pipelines.models import credit_risk, digits


@pytest.fixture(scope="module")
def digit_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    pixels, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        pixels.astype(np.float32), labels, test_size=0.2, random_state=0, stratify=labels
    )
    return x_train, x_test, y_train, y_test


def test_credit_risk_trees_beat_a_linear_model() -> None:
    frame = generate(8_000, seed=0)
    train, test = frame.iloc[:6_000], frame.iloc[6_000:]
    features = list(FEATURES)
    linear = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("c", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_FEATURES)),
                        ("n", StandardScaler(), list(NUMERIC_FEATURES)),
                    ]
                ),
            ),
            ("classifier", LogisticRegression(max_iter=1_000)),
        ]
    ).fit(train[features], train[TARGET])
    trees = credit_risk.build_pipeline(seed=0).fit(train[features], train[TARGET])

    linear_auc = roc_auc_score(test[TARGET], linear.predict_proba(test[features])[:, 1])
    metrics = credit_risk.evaluate(trees, test[features], test[TARGET])
    assert metrics["roc_auc"] > linear_auc + 0.01
    assert metrics["roc_auc"] < credit_risk.oracle_roc_auc(test) + 0.01
    assert set(metrics) == {"accuracy", "roc_auc", "log_loss", "brier"}


def test_credit_risk_pipeline_ignores_unknown_categories() -> None:
    frame = generate(500, seed=1)
    model = credit_risk.build_pipeline(seed=1).fit(frame[list(FEATURES)], frame[TARGET])
    odd = frame[list(FEATURES)].head(3).assign(loan_purpose="wedding")
    assert model.predict(odd).shape == (3,)


def test_credit_risk_signature_names_and_types_every_feature() -> None:
    signature = credit_risk.signature()
    inputs = {spec.name: spec.type for spec in signature.inputs.inputs}

    assert list(inputs) == list(FEATURES)
    assert inputs["age"] == DataType.long
    assert inputs["income"] == DataType.double
    assert inputs["employment_type"] == DataType.string
    assert signature.outputs is not None
    assert signature.outputs.input_names() == ["prediction"]


def test_digits_model_is_accurate_on_raw_pixels(
    digit_split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x_train, x_test, y_train, y_test = digit_split
    model = digits.fit(x_train, y_train, seed=0)

    assert isinstance(model, torch.nn.Sequential)
    assert not model.training
    logits = digits.predict_logits(model, x_test)
    assert logits.shape == (len(x_test), 10)
    assert logits.dtype == np.float32
    # The standardisation is folded in: raw 0..16 pixels go straight in and still classify well.
    assert digits.evaluate(model, x_test, y_test)["accuracy"] > 0.95


def test_digits_training_is_deterministic_and_leaves_torch_settings_alone(
    digit_split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x_train, _, y_train, _ = digit_split
    config = digits.TrainingConfig(epochs=2)
    threads = torch.get_num_threads()
    rng_state = torch.random.get_rng_state()

    first = digits.fit(x_train, y_train, seed=5, config=config)
    second = digits.fit(x_train, y_train, seed=5, config=config)
    other = digits.fit(x_train, y_train, seed=6, config=config)

    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first.state_dict()["0.weight"], other.state_dict()["0.weight"])
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng_state)


def test_digits_signature_is_tensor_based() -> None:
    signature = digits.signature()
    (pixels,) = signature.inputs.inputs
    assert signature.outputs is not None
    (logits,) = signature.outputs.inputs

    assert (pixels.type, pixels.shape) == (np.dtype(np.float32), (-1, 64))
    assert (logits.name, logits.type, logits.shape) == ("logits", np.dtype(np.float32), (-1, 10))
    assert digits.metadata() == {"input_name": "pixels", "output_name": "logits"}
