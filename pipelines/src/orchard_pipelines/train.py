"""Train Orchard's demo models, log them to MLflow, register a version and set an alias.

Run ``python -m orchard_pipelines.train --help``. With ``--json`` the last line of stdout is
``{"models": [{"name", "version", "run_id", "model_uri", "metrics"}, ...]}``; progress goes to
stderr. Exit codes: 0 success, 1 training or MLflow failure, 2 bad arguments or an unreachable
tracking server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Final

import mlflow.pytorch
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from torch import nn

from orchard_pipelines.datasets import credit_risk as credit_data
from orchard_pipelines.errors import PipelineError, TrackingServerUnavailable
from orchard_pipelines.models import credit_risk as credit_model
from orchard_pipelines.models import digits as digits_model
from orchard_pipelines.profiles import build_profile
from orchard_pipelines.tracking import (
    PROFILE_ARTIFACT,
    TrainingResult,
    check_reachable,
    publish_version,
    training_run,
)

__all__ = ["MIN_ROWS", "MODELS", "main", "train_credit_risk", "train_digits"]

MODELS: Final = ("credit-risk", "digits")
MIN_ROWS: Final = 50  # fewer leaves too few defaults to stratify the holdout split
# Named, not __name__: under `python -m` that would be "__main__", outside the package logger.
_logger = logging.getLogger("orchard_pipelines.train")


def train_credit_risk(
    *,
    tracking_uri: str | None = None,
    experiment: str = "orchard",
    registered_model_name: str = "credit-risk",
    alias: str | None = "champion",
    seed: int = 42,
    n_rows: int = 20_000,
    test_size: float = 0.2,
) -> TrainingResult[Pipeline]:
    """Train the credit-risk classifier on generated data, log, register and alias it.

    Args:
        tracking_uri: MLflow tracking URI for this call only; None uses MLflow's current one
            (e.g. from ``MLFLOW_TRACKING_URI``).
        experiment: MLflow experiment, created when missing.
        registered_model_name: Registered model that gets the new version.
        alias: Alias pointed at the new version; None sets none.
        seed: Seeds data generation, the split and the model.
        n_rows: Rows to generate, before the holdout split.
        test_size: Holdout share for the metrics.

    Raises:
        ValueError: ``n_rows`` is below :data:`MIN_ROWS`.
        TrackingServerUnavailable: The tracking server does not answer.
    """
    if n_rows < MIN_ROWS:
        raise ValueError(f"n_rows must be at least {MIN_ROWS}, got {n_rows}")
    if tracking_uri:
        check_reachable(tracking_uri)  # before training, not after it
    _logger.info("credit-risk: generating %d rows (seed %d)", n_rows, seed)
    frame = credit_data.generate(n_rows, seed=seed)
    train, test = train_test_split(
        frame, test_size=test_size, random_state=seed, stratify=frame[credit_data.TARGET]
    )
    features = list(credit_data.FEATURES)
    model = credit_model.build_pipeline(seed).fit(train[features], train[credit_data.TARGET])
    metrics = credit_model.evaluate(model, test[features], test[credit_data.TARGET])
    metrics["oracle_roc_auc"] = credit_model.oracle_roc_auc(test)
    _logger.info("credit-risk: holdout %s", _format_metrics(metrics))
    profile = build_profile(
        train[features],
        categorical=credit_data.CATEGORICAL_FEATURES,
        outputs=pd.DataFrame({credit_model.OUTPUT_NAME: model.predict(train[features])}),
        categorical_outputs=[credit_model.OUTPUT_NAME],
    )
    params = {
        "dataset": credit_data.NAME,
        "seed": seed,
        "n_rows": n_rows,
        "test_size": test_size,
        "classifier": "HistGradientBoostingClassifier",
        **credit_model.HYPERPARAMETERS,
    }
    with training_run(
        tracking_uri=tracking_uri,
        experiment=experiment,
        run_name=f"{registered_model_name}-seed{seed}",
        tags={"orchard.model": registered_model_name, "orchard.dataset": credit_data.NAME},
    ) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.log_dict(profile.to_dict(), PROFILE_ARTIFACT)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=credit_model.signature(),
            input_example=train[features].head(5),
            # Explicit requirements skip MLflow's slow inference subprocess; cloudpickle (not
            # skops) because mlflow-skinny, which serving images install, ships without skops.
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True),
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        )
        version = publish_version(
            info,
            profile=profile,
            registered_model_name=registered_model_name,
            alias=alias,
            metrics=metrics,
            tags={"orchard.dataset": credit_data.NAME},
        )
    _logger.info("credit-risk: registered %s version %s", registered_model_name, version)
    return TrainingResult(
        registered_model_name, version, run.info.run_id, metrics, model=model, profile=profile
    )


def train_digits(
    *,
    tracking_uri: str | None = None,
    experiment: str = "orchard",
    registered_model_name: str = "digits",
    alias: str | None = "champion",
    seed: int = 42,
    test_size: float = 0.2,
    config: digits_model.TrainingConfig | None = None,
) -> TrainingResult[nn.Sequential]:
    """Train the digits MLP on scikit-learn's digits, log, register and alias it.

    Arguments as for :func:`train_credit_risk`; ``config`` sets the optimiser.

    Raises:
        TrackingServerUnavailable: The tracking server does not answer.
    """
    if tracking_uri:
        check_reachable(tracking_uri)  # before training, not after it
    config = config or digits_model.TrainingConfig()
    pixels, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        pixels.astype(np.float32),
        labels.astype(np.int64),
        test_size=test_size,
        random_state=seed,
        stratify=labels,
    )
    _logger.info("digits: training on %d images (seed %d)", len(x_train), seed)
    model = digits_model.fit(x_train, y_train, seed=seed, config=config)
    metrics = digits_model.evaluate(model, x_test, y_test)
    _logger.info("digits: holdout %s", _format_metrics(metrics))
    predicted = digits_model.predict_logits(model, x_train).argmax(axis=1)
    profile = build_profile(
        pd.DataFrame(x_train, columns=list(digits_model.FEATURES)),
        outputs=pd.DataFrame({"prediction": predicted}),
        categorical_outputs=["prediction"],
    )
    params = {"dataset": "sklearn-digits", "seed": seed, "test_size": test_size}
    params.update({key: getattr(config, key) for key in config.__dataclass_fields__})
    with training_run(
        tracking_uri=tracking_uri,
        experiment=experiment,
        run_name=f"{registered_model_name}-seed{seed}",
        tags={"orchard.model": registered_model_name, "orchard.dataset": "sklearn-digits"},
    ) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.log_dict(profile.to_dict(), PROFILE_ARTIFACT)
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            signature=digits_model.signature(),
            input_example=x_train[:5],
            metadata=digits_model.metadata(),
            pip_requirements=mlflow.pytorch.get_default_pip_requirements(),
            # A pickled nn.Sequential loads anywhere torch is installed, at any batch size.
            serialization_format="pickle",
        )
        version = publish_version(
            info,
            profile=profile,
            registered_model_name=registered_model_name,
            alias=alias,
            metrics=metrics,
            tags={"orchard.dataset": "sklearn-digits"},
        )
    _logger.info("digits: registered %s version %s", registered_model_name, version)
    return TrainingResult(
        registered_model_name, version, run.info.run_id, metrics, model=model, profile=profile
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    results: list[TrainingResult[object]] = []
    try:
        # Libraries print progress to stdout; keep stdout for the summary alone.
        with _progress_to_stderr(), contextlib.redirect_stdout(sys.stderr):
            for name in MODELS if args.model == "all" else (args.model,):
                results.append(_train_one(name, args))
    except TrackingServerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (PipelineError, MlflowException) as exc:
        print(f"error: {_first_line(str(exc))}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"models": [r.summary() for r in results]}))
    else:
        for r in results:
            print(
                f"{r.name} version {r.version} ({r.model_uri}, run {r.run_id}): "
                f"{_format_metrics(r.metrics)}"
            )
    return 0


@contextlib.contextmanager
def _progress_to_stderr() -> Iterator[None]:
    # Our own handler, removed afterwards: importing mlflow.pytorch runs
    # logging.basicConfig(level=ERROR), so the root logger can't be configured for INFO here,
    # and propagating to its handler would print every line twice.
    package = logging.getLogger("orchard_pipelines")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, propagate = package.level, package.propagate
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    package.propagate = False
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        package.propagate = propagate


def _train_one(name: str, args: argparse.Namespace) -> TrainingResult[object]:
    common = {
        "tracking_uri": args.tracking_uri,
        "experiment": args.experiment,
        "alias": args.alias,
        "seed": args.seed,
    }
    if name == "credit-risk":
        return train_credit_risk(n_rows=args.n_rows, **common)
    return train_digits(**common)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m orchard_pipelines.train",
        description="Train Orchard's demo models, register them in MLflow and set an alias.",
    )
    parser.add_argument("--model", choices=[*MODELS, "all"], default="all")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's default)",
    )
    parser.add_argument("--experiment", default="orchard")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--n-rows", type=_row_count, default=20_000, help="credit-risk rows")
    parser.add_argument("--alias", default="champion", help="alias set on each new version")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    return parser


def _row_count(text: str) -> int:
    value = int(text)
    if value < MIN_ROWS:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_ROWS}")
    return value


def _format_metrics(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items())


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "unknown error"


if __name__ == "__main__":
    sys.exit(main())
