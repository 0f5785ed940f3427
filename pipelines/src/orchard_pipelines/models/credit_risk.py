"""The credit-risk classifier: a scikit-learn pipeline over the credit-risk dataset's columns."""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from orchard_pipelines.datasets.credit_risk import (
    CATEGORICAL_FEATURES,
    INTEGER_FEATURES,
    NUMERIC_FEATURES,
    TARGET,
)

__all__ = [
    "HYPERPARAMETERS",
    "OUTPUT_NAME",
    "build_pipeline",
    "evaluate",
    "oracle_roc_auc",
    "signature",
]

OUTPUT_NAME: Final = "prediction"
# Tuned on seed 42: holdout ROC AUC about 0.83 in well under a second on two cores.
HYPERPARAMETERS: Final[dict[str, Any]] = {
    "learning_rate": 0.05,
    "max_iter": 300,
    "max_leaf_nodes": 15,
    "early_stopping": True,
    "validation_fraction": 0.1,
    "n_iter_no_change": 20,
}


def build_pipeline(seed: int) -> Pipeline:
    """An unfitted pipeline: one-hot categoricals, scaled numerics, gradient-boosted trees."""
    preprocess = ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(CATEGORICAL_FEATURES),
            ),
            ("numeric", StandardScaler(), list(NUMERIC_FEATURES)),
        ],
        remainder="drop",
    )
    classifier = HistGradientBoostingClassifier(random_state=seed, **HYPERPARAMETERS)
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def evaluate(model: Pipeline, features: pd.DataFrame, labels: pd.Series) -> dict[str, float]:
    """Holdout metrics: accuracy, ROC AUC, log loss and Brier score of P(default)."""
    probability = np.asarray(model.predict_proba(features))[:, 1]
    predicted = np.asarray(model.predict(features))
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "roc_auc": float(roc_auc_score(labels, probability)),
        "log_loss": float(log_loss(labels, probability, labels=[0, 1])),
        "brier": float(brier_score_loss(labels, probability)),
    }


def oracle_roc_auc(frame: pd.DataFrame) -> float:
    """ROC AUC of the ground-truth probability itself: the best any model can do on ``frame``."""
    return float(roc_auc_score(frame[TARGET], frame["p_true"]))


def signature() -> ModelSignature:
    """Column-based signature: each feature by name, the predicted class as ``prediction``."""
    numeric = [
        ColSpec(DataType.long if name in INTEGER_FEATURES else DataType.double, name)
        for name in NUMERIC_FEATURES
    ]
    categorical = [ColSpec(DataType.string, name) for name in CATEGORICAL_FEATURES]
    return ModelSignature(
        inputs=Schema([*numeric, *categorical]),
        outputs=Schema([ColSpec(DataType.long, OUTPUT_NAME)]),
    )
