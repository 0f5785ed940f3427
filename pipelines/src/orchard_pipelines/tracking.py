"""Talking to MLflow: reaching the tracking server, registering versions, naming the result."""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient

from orchard_core.profiles import ReferenceProfile
from orchard_pipelines.errors import TrackingServerUnavailable

__all__ = [
    "PROFILE_ARTIFACT",
    "TrainingResult",
    "check_reachable",
    "discard_run_versions",
    "publish_version",
    "training_run",
]

PROFILE_ARTIFACT: Final = "reference_profile.json"
_TRACKING_URI_ENV: Final = "MLFLOW_TRACKING_URI"

ModelT = TypeVar("ModelT", covariant=True)


@dataclass(frozen=True)
class TrainingResult(Generic[ModelT]):
    """A trained, logged and registered model, plus the in-memory model itself."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    model: ModelT = field(repr=False)
    profile: ReferenceProfile = field(repr=False)

    @property
    def model_uri(self) -> str:
        """The registry URI of this exact version, ``models:/<name>/<version>``."""
        return f"models:/{self.name}/{self.version}"

    def summary(self) -> dict[str, Any]:
        """The JSON summary the CLI prints: name, version, run_id, model_uri and metrics."""
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "metrics": dict(self.metrics),
        }


def check_reachable(tracking_uri: str, *, timeout_s: float = 5.0) -> None:
    """Fail fast when an HTTP tracking server does not answer.

    MLflow's own client retries with exponential backoff for minutes before giving up, so a
    wrong URI would otherwise look like a hang. Non-HTTP URIs (sqlite, file) are not checked.

    Raises:
        TrackingServerUnavailable: No HTTP answer from ``<tracking_uri>/health``.
    """
    scheme = urllib.parse.urlsplit(tracking_uri).scheme
    if scheme not in ("http", "https"):
        return
    url = tracking_uri.rstrip("/") + "/health"
    try:
        # The scheme is checked above, so this cannot open a file: or ftp: URL.
        with urllib.request.urlopen(url, timeout=timeout_s):  # noqa: S310
            pass
    except urllib.error.HTTPError:
        return  # It answered: a proxy or auth layer may guard /health, the server is there.
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingServerUnavailable(
            f"MLflow tracking server at {tracking_uri} is unreachable: {reason}"
        ) from exc


@contextmanager
def training_run(
    *, tracking_uri: str | None, experiment: str, run_name: str, tags: Mapping[str, str]
) -> Iterator[Run]:
    """Open a run in ``experiment`` (created when missing) on ``tracking_uri``.

    The URI applies inside the block only: MLflow's global tracking URI, and the
    ``MLFLOW_TRACKING_URI`` variable MLflow mirrors it into, are restored afterwards. Nests
    under the caller's active run, if any, rather than failing.

    Raises:
        TrackingServerUnavailable: An HTTP tracking server does not answer.
    """
    if tracking_uri:
        check_reachable(tracking_uri)
    with _tracking_uri_scope(tracking_uri):
        experiment_id = _experiment_id(MlflowClient(), experiment)
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=run_name,
            nested=mlflow.active_run() is not None,
            tags=dict(tags),
        ) as run:
            yield run


def publish_version(
    model_info: ModelInfo,
    *,
    profile: ReferenceProfile,
    registered_model_name: str,
    alias: str | None,
    metrics: Mapping[str, float],
    tags: Mapping[str, str] | None = None,
) -> str:
    """Register a logged model as a new version and point ``alias`` at it.

    The reference profile is stored next to the model files first, so anyone holding the
    version (``models:/<name>/<version>/reference_profile.json``) can fetch it. The version is
    tagged with the metrics (as strings) and ``tags``.

    Returns:
        The new version number, as MLflow reports it (a string).
    """
    client = MlflowClient()
    with tempfile.TemporaryDirectory(prefix="orchard-profile-") as tmp:
        path = Path(tmp) / PROFILE_ARTIFACT
        path.write_text(profile.to_json(), encoding="utf-8")
        client.log_model_artifact(model_info.model_id, str(path))
    version_tags = {name: repr(float(value)) for name, value in metrics.items()}
    version_tags.update(tags or {})
    version = mlflow.register_model(model_info.model_uri, registered_model_name, tags=version_tags)
    if alias:
        client.set_registered_model_alias(registered_model_name, alias, version.version)
    return str(version.version)


def discard_run_versions(
    client: MlflowClient, registered_model_name: str, run_id: str
) -> list[str]:
    """Delete every version of ``registered_model_name`` registered from ``run_id``.

    The undo for a registration that failed part-way: searching by run rather than trusting a
    returned version number also catches a version created by a call that then raised.

    Returns:
        The deleted version numbers.
    """
    found = client.search_model_versions(
        f"name = '{registered_model_name}' and run_id = '{run_id}'"
    )
    deleted = []
    for version in found:
        client.delete_model_version(registered_model_name, version.version)
        deleted.append(str(version.version))
    return deleted


@contextmanager
def _tracking_uri_scope(tracking_uri: str | None) -> Iterator[None]:
    if not tracking_uri:
        yield
        return
    previous_uri = mlflow.get_tracking_uri()
    previous_env = os.environ.get(_TRACKING_URI_ENV)
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous_uri)
        if previous_env is None:
            os.environ.pop(_TRACKING_URI_ENV, None)
        else:
            os.environ[_TRACKING_URI_ENV] = previous_env


def _experiment_id(client: MlflowClient, name: str) -> str:
    # Not mlflow.set_experiment: that would leave a process-wide active experiment behind.
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        # Another process created it between our lookup and create.
        created = client.get_experiment_by_name(name)
        if created is None:
            raise
        return str(created.experiment_id)
