"""Where models come from: resolving a model URI to a registry version and local files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["LOCAL_VERSION", "MlflowModelSource", "ModelLocation", "ModelSource"]

#: The version a model gets when it comes from a directory or a run, not the registry.
LOCAL_VERSION = "1"
_MODELS = "models:/"


@dataclass(frozen=True, slots=True)
class ModelLocation:
    """A resolved model URI: its concrete version and where its files are."""

    uri: str
    version: str
    #: A local directory (served in place) or None when ``artifact_uri`` must be downloaded.
    local_path: str | None
    artifact_uri: str | None = None


class ModelSource(Protocol):
    """Resolves and fetches models (the MLflow registry in production, anything in tests)."""

    def resolve(self, uri: str) -> ModelLocation:
        """The concrete version behind ``uri`` (an alias becomes a version number).

        Blocking. Raises on an unknown model, version, alias or path.
        """
        ...

    def fetch(self, location: ModelLocation, into: str) -> str:
        """The local directory of the model, downloading into ``into`` if needed. Blocking."""
        ...


def _local_dir(uri: str) -> str | None:
    path = uri.removeprefix("file://") if uri.startswith("file://") else uri
    if "://" in path or path.startswith(("models:", "runs:")):
        return None
    return path


class MlflowModelSource:
    """Resolves ``models:/name@alias``, ``models:/name/<version|latest>`` and local directories.

    The tracking and registry URIs default to MLflow's own resolution (``MLFLOW_TRACKING_URI``,
    ``MLFLOW_REGISTRY_URI``). Other artifact URIs (``runs:/``, ``s3://``, ...) are downloaded
    and served as version ``1``.
    """

    def __init__(self, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        self._tracking_uri = tracking_uri
        self._registry_uri = registry_uri
        self._client: Any = None

    def _registry(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self._tracking_uri, self._registry_uri)
        return self._client

    def resolve(self, uri: str) -> ModelLocation:
        if uri.startswith(_MODELS):
            name, version = self._registry_version(uri[len(_MODELS) :])
            return ModelLocation(uri, version, None, f"{_MODELS}{name}/{version}")
        path = _local_dir(uri)
        if path is None:
            return ModelLocation(uri, LOCAL_VERSION, None, uri)
        if not os.path.isfile(os.path.join(path, "MLmodel")):
            raise FileNotFoundError(f"no MLflow model at {path} (no MLmodel file there)")
        return ModelLocation(uri, LOCAL_VERSION, os.path.abspath(path))

    def _registry_version(self, ref: str) -> tuple[str, str]:
        client = self._registry()
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return name, str(client.get_model_version_by_alias(name, alias).version)
        name, _, version = ref.partition("/")
        if not name or not version:
            raise ValueError(
                f"model URI 'models:/{ref}' is neither models:/<name>@<alias> "
                "nor models:/<name>/<version>"
            )
        if version == "latest":
            found = client.search_model_versions(f"name='{name}'")
            if not found:
                raise LookupError(f"registered model '{name}' has no versions")
            return name, str(max(int(v.version) for v in found))
        if not version.isdigit():
            raise ValueError(f"model version '{version}' of '{name}' is not a number")
        return name, str(client.get_model_version(name, version).version)

    def fetch(self, location: ModelLocation, into: str) -> str:
        if location.local_path is not None:
            return location.local_path
        import mlflow.artifacts

        path: str = mlflow.artifacts.download_artifacts(
            artifact_uri=location.artifact_uri,
            dst_path=into,
            tracking_uri=self._tracking_uri,
            registry_uri=self._registry_uri,
        )
        return path
