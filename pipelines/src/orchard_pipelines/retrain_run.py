"""One retraining, as a function: data, candidate, champion, MLflow run, registration.

:mod:`orchard_pipelines.retrain` is its command line and describes the behaviour in full.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from orchard_pipelines.errors import PipelineError
from orchard_pipelines.faults import DEFECTS
from orchard_pipelines.models import digits as digits_model
from orchard_pipelines.retrain_data import (
    LABEL,
    HoldoutSource,
    RetrainData,
    read_production_rows,
    split_for_retraining,
)
from orchard_pipelines.retrain_models import CreditRisk, Digits, RetrainableModel
from orchard_pipelines.tracking import (
    PROFILE_ARTIFACT,
    check_reachable,
    discard_run_versions,
    publish_version,
    training_run,
)
from orchard_pipelines.train import MIN_ROWS, MODELS, _first_line, _format_metrics

__all__ = [
    "CHAMPION_ALIAS",
    "HOLDOUT_ARTIFACT",
    "Progress",
    "RetrainOptions",
    "RetrainResult",
    "retrain",
]

CHAMPION_ALIAS: Final = "champion"
HOLDOUT_ARTIFACT: Final = "gate/holdout.npz"
Progress = Callable[[float, str], None]
_logger = logging.getLogger("orchard_pipelines.retrain")


@dataclass(frozen=True)
class RetrainOptions:
    """One retraining: which model, on what data, recorded where (see the CLI's docstring)."""

    model: str
    tracking_uri: str | None = None
    production_data: str | None = None
    trigger_id: str | None = None
    pipeline_run_id: str | None = None
    experiment: str = "orchard"
    seed: int = 42
    n_rows: int = 20_000
    defect: str | None = None
    registered_model_name: str | None = None  # default: ``model``
    digits_config: digits_model.TrainingConfig | None = None

    @property
    def name(self) -> str:
        """The registered model that gets the new version."""
        return self.registered_model_name or self.model


@dataclass(frozen=True)
class RetrainResult:
    """A retrained, logged and registered version (aliased by no one yet)."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    champion_version: str | None
    holdout_rows: int
    holdout_source: HoldoutSource
    production_rows: int

    @property
    def model_uri(self) -> str:
        """The registry URI of this exact version, ``models:/<name>/<version>``."""
        return f"models:/{self.name}/{self.version}"

    def summary(self) -> dict[str, Any]:
        """The JSON line the CLI prints last."""
        return {
            "model": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "metrics": dict(self.metrics),
            "champion_version": self.champion_version,
            "holdout": {"rows": self.holdout_rows, "source": self.holdout_source},
            "production_rows": self.production_rows,
        }


@dataclass(frozen=True)
class _Evaluation:
    arrays: dict[str, Any]  # holdout.npz: labels, candidate and (maybe) champion
    metrics: dict[str, float]


def retrain(options: RetrainOptions, *, progress: Progress | None = None) -> RetrainResult:
    """Retrain, evaluate against the champion, log and register one version (no alias).

    Args:
        options: What to retrain and where to record it.
        progress: Called with (fraction done, stage) as each stage begins.

    Raises:
        ValueError: Bad options (unknown model or defect, too few rows).
        TrackingServerUnavailable: The tracking server does not answer.
        ProductionDataError: The production data cannot be read.
        PipelineError, MlflowException: Training or MLflow failed; nothing stays registered.
    """
    step = progress or _no_progress
    kind = _model_kind(options)
    if options.tracking_uri:
        check_reachable(options.tracking_uri)  # before any work, not after it
    step(0.05, "loading data")
    data, skipped = _load_data(kind, options)
    client = MlflowClient(options.tracking_uri or None)
    run_tags = {
        "orchard.model": options.name,
        "orchard.dataset": kind.dataset,
        "orchard.gate.task": kind.task,
        **_ids(options),
    }
    # Outermost, so that a failure even while the run is closed undoes the registration.
    with (
        _registration_undone_on_failure(client, options.name) as registering,
        training_run(
            tracking_uri=options.tracking_uri,
            experiment=options.experiment,
            run_name=f"{options.name}-retrain-{options.pipeline_run_id or options.seed}",
            tags=run_tags,
        ) as run,
    ):
        run_id = run.info.run_id
        step(0.15, "loading the champion")
        champion_version, champion = _champion(client, kind, options.name)
        step(0.25, "training")
        _logger.info("%s: training on %d rows", options.name, len(data.train))
        model = kind.fit(data, options.seed)
        step(0.55, "evaluating on the holdout")
        evaluation = _evaluate(kind, model, data.holdout, champion, champion_version)
        step(0.65, "logging to MLflow")
        if champion_version is not None:
            mlflow.set_tag("orchard.champion_version", champion_version)
        mlflow.log_params(
            {
                "model": options.model,
                "seed": options.seed,
                "n_rows": data.reference_rows,
                "production_rows": data.production_rows,
                "production_rows_skipped": skipped,
                "holdout_rows": len(data.holdout),
                "holdout_source": data.holdout_source,
                **kind.params(),
                **{key.removeprefix("orchard."): value for key, value in _ids(options).items()},
            }
        )
        mlflow.log_metrics(evaluation.metrics)
        profile = kind.profile(model, _profile_rows(data, options.seed))
        mlflow.log_dict(profile.to_dict(), PROFILE_ARTIFACT)
        _log_holdout(evaluation.arrays)
        info = kind.log(model, data.train, defect=options.defect)
        step(0.85, "registering")
        registering(run_id)
        version = publish_version(
            info,
            profile=profile,
            registered_model_name=options.name,
            alias=None,
            metrics=evaluation.metrics,
            tags={
                "orchard.dataset": kind.dataset,
                "orchard.mlflow_run_id": run_id,
                **_ids(options),
            },
        )
        _confirm_registered(client, options.name, version)
    _logger.info("%s: registered version %s (no alias)", options.name, version)
    step(1.0, "done")
    return RetrainResult(
        name=options.name,
        version=version,
        run_id=run_id,
        metrics=evaluation.metrics,
        champion_version=champion_version,
        holdout_rows=len(data.holdout),
        holdout_source=data.holdout_source,
        production_rows=data.production_rows,
    )


def _no_progress(fraction: float, stage: str) -> None:
    pass


def _model_kind(options: RetrainOptions) -> RetrainableModel:
    if options.model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {options.model!r}")
    if options.defect is not None and options.defect not in DEFECTS:
        raise ValueError(f"defect must be one of {', '.join(DEFECTS)}, got {options.defect!r}")
    if options.model == "digits":
        if options.defect is not None:
            raise ValueError("--defect is supported for credit-risk only")
        return Digits(options.digits_config)
    if options.n_rows < MIN_ROWS:
        raise ValueError(f"n_rows must be at least {MIN_ROWS}, got {options.n_rows}")
    return CreditRisk()


def _load_data(kind: RetrainableModel, options: RetrainOptions) -> tuple[RetrainData, int]:
    source = options.production_data
    records = read_production_rows(source) if source else []
    production, skipped = kind.production(records)
    if skipped:
        _logger.warning(
            "%s: skipped %d of %d production rows lacking a valid label or a feature",
            options.name,
            skipped,
            len(records),
        )
    reference = kind.reference(options.n_rows, options.seed)
    data = split_for_retraining(reference, production, features=kind.features, seed=options.seed)
    _logger.info(
        "%s: %d reference rows, %d usable production rows; holdout: %d %s rows",
        options.name,
        data.reference_rows,
        data.production_rows,
        len(data.holdout),
        data.holdout_source,
    )
    return data, skipped


def _ids(options: RetrainOptions) -> dict[str, str]:
    ids = {
        "orchard.trigger_id": options.trigger_id,
        "orchard.pipeline_run_id": options.pipeline_run_id,
        "orchard.defect": options.defect,
    }
    return {key: value for key, value in ids.items() if value}


def _champion(
    client: MlflowClient, kind: RetrainableModel, name: str
) -> tuple[str | None, Any | None]:
    # The registered model's alias table, not get_model_version_by_alias: a missing alias
    # comes back from that as INVALID_PARAMETER_VALUE, indistinguishable from a real error.
    try:
        registered = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        registered = None
    version = registered.aliases.get(CHAMPION_ALIAS) if registered is not None else None
    if version is None:
        # The first version has nothing to beat: the gate decides on the candidate alone.
        _logger.info("%s: no @%s version yet", name, CHAMPION_ALIAS)
        return None, None
    _logger.info("%s: champion is version %s", name, version)
    return str(version), kind.load(f"models:/{name}/{version}")


def _evaluate(
    kind: RetrainableModel,
    model: Any,
    holdout: pd.DataFrame,
    champion: Any | None,
    champion_version: str | None,
) -> _Evaluation:
    labels = holdout[LABEL].to_numpy(dtype=np.int64)
    arrays: dict[str, Any] = {"labels": labels, "candidate": kind.scores(model, holdout)}
    metrics = {**kind.metrics(model, holdout), **kind.holdout_metrics(holdout)}
    if champion is not None:
        try:
            arrays["champion"] = kind.scores(champion, holdout)
            champion_metrics = kind.metrics(champion, holdout)
        except Exception as exc:
            # Not passed over: without the champion's scores the gate would judge half blind.
            raise PipelineError(
                f"champion version {champion_version} cannot score the holdout: "
                f"{_first_line(str(exc))}"
            ) from exc
        metrics.update({f"champion_{key}": value for key, value in champion_metrics.items()})
    _logger.info("holdout: %s", _format_metrics(metrics))
    return _Evaluation(arrays, metrics)


def _log_holdout(arrays: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="orchard-holdout-") as tmp:
        path = Path(tmp) / Path(HOLDOUT_ARTIFACT).name
        np.savez_compressed(path, **arrays)
        mlflow.log_artifact(str(path), artifact_path=str(Path(HOLDOUT_ARTIFACT).parent))


@contextmanager
def _registration_undone_on_failure(
    client: MlflowClient, name: str
) -> Iterator[Callable[[str], None]]:
    # Yields "registration starts now for this run"; if the block then fails, every version
    # of that run is deleted, including one created by a call that raised half-way.
    started: list[str] = []
    try:
        yield started.append
    except BaseException:
        for run_id in started:
            _discard(client, name, run_id)
        raise


def _discard(client: MlflowClient, name: str, run_id: str) -> None:
    try:
        deleted = discard_run_versions(client, name, run_id)
    except Exception:
        _logger.exception("%s: could not delete the versions of run %s", name, run_id)
        return  # the failure that got us here is re-raised all the same
    if deleted:
        _logger.warning("%s: deleted half-registered version(s) %s", name, ", ".join(deleted))


def _confirm_registered(client: MlflowClient, name: str, version: str) -> None:
    # Some registries create versions asynchronously; the gate must never get one not READY.
    status = client.get_model_version(name, version).status
    if status != "READY":
        raise PipelineError(f"{name} version {version} is {status}, not READY")


# Distance-based drift tests (Evidently's defaults) need a reference of more than 1,000 rows;
# below that, evaluation falls back to statistical tests that flag tiny differences.
MIN_PROFILE_PRODUCTION_ROWS = 1_000


def _profile_rows(data: RetrainData, seed: int) -> pd.DataFrame:
    """The rows the new version's reference profile describes: the traffic it should expect.

    A retrained model is trained for the traffic it faces now, so its reference is the recent
    production rows when there are enough of them; otherwise the training rows as weighted
    for training (resampled by their weights), so drift is judged against what the model was
    fitted to, not against the reference data alone.
    """
    if data.production_train_rows >= MIN_PROFILE_PRODUCTION_ROWS:
        return data.train.iloc[data.reference_train_rows :]
    if data.production_train_rows == 0:
        return data.train
    weights = data.balanced_weights()
    return data.train.sample(n=len(data.train), replace=True, weights=weights, random_state=seed)
