"""The model registry (MLflow): aliases, versions by tag, run artifacts.

Blocking (MLflow's client is synchronous); callers on the event loop use ``asyncio.to_thread``.
Every MLflow failure comes out as :class:`RegistryUnavailable` (it could not be reached, or it
broke) or :class:`NotFound` (no such model, version or alias), never as MLflow's own
exception types, so callers decide without knowing MLflow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from orchard_core.errors import NotFound, ServiceUnavailable

__all__ = ["ModelRegistry", "ModelVersionInfo", "RegistryUnavailable"]

CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"

# MLflow's client retries a failing server with backoff for minutes by default: a controller
# that must notice an outage (and carry on with other work) wants a short answer instead.
_CLIENT_ENV: Final = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
_NOT_FOUND_CODES: Final = frozenset(
    {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"}
)


class RegistryUnavailable(ServiceUnavailable):
    """MLflow could not be reached or failed (503): try again later."""


@dataclass(frozen=True, slots=True)
class ModelVersionInfo:
    """One registered version: where its files are, the run that made it, its tags."""

    model: str
    version: str
    source: str
    run_id: str | None
    tags: Mapping[str, str]
    aliases: tuple[str, ...]


class ModelRegistry:
    """MLflow's model registry at ``tracking_uri``."""

    def __init__(self, tracking_uri: str) -> None:
        for name, value in _CLIENT_ENV.items():
            os.environ.setdefault(name, value)
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def alias_version(self, model: str, alias: str) -> str | None:
        """The version ``alias`` points at; ``None`` when the model or alias does not exist.

        Raises:
            RegistryUnavailable: MLflow did not answer.
        """
        try:
            return str(self._client.get_model_version_by_alias(model, alias).version)
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise _unavailable(f"reading {model}@{alias}", exc) from exc

    def set_alias(self, model: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``.

        Raises:
            NotFound: no such model version.
            RegistryUnavailable: MLflow did not answer.
        """
        try:
            self._client.set_registered_model_alias(model, alias, version)
        except Exception as exc:
            if _is_not_found(exc):
                raise NotFound(f"{model} has no version {version} to alias {alias!r}") from exc
            raise _unavailable(f"setting {model}@{alias}", exc) from exc

    def remove_alias(self, model: str, alias: str) -> None:
        """Delete ``alias``; one that does not exist is fine.

        Raises:
            RegistryUnavailable: MLflow did not answer.
        """
        try:
            self._client.delete_registered_model_alias(model, alias)
        except Exception as exc:
            if _is_not_found(exc):
                return
            raise _unavailable(f"removing {model}@{alias}", exc) from exc

    def version(self, model: str, version: str) -> ModelVersionInfo:
        """One version's details.

        Raises:
            NotFound: no such model version.
            RegistryUnavailable: MLflow did not answer.
        """
        try:
            found = self._client.get_model_version(model, version)
        except Exception as exc:
            if _is_not_found(exc):
                raise NotFound(f"{model} has no version {version}") from exc
            raise _unavailable(f"reading {model} version {version}", exc) from exc
        return ModelVersionInfo(
            model=model,
            version=str(found.version),
            source=str(found.source),
            run_id=found.run_id or None,
            tags=dict(found.tags or {}),
            aliases=tuple(getattr(found, "aliases", ()) or ()),
        )

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None:
        """Tag a version (e.g. ``orchard.gate`` = the quality gate's verdict).

        Raises:
            NotFound: no such model version.
            RegistryUnavailable: MLflow did not answer.
        """
        try:
            self._client.set_model_version_tag(model, version, key, value)
        except Exception as exc:
            if _is_not_found(exc):
                raise NotFound(f"{model} has no version {version} to tag") from exc
            raise _unavailable(f"tagging {model} version {version}", exc) from exc

    def run_tags(self, run_id: str) -> dict[str, str]:
        """A run's tags.

        Raises:
            NotFound: no such run.
            RegistryUnavailable: MLflow did not answer.
        """
        try:
            return dict(self._client.get_run(run_id).data.tags)
        except Exception as exc:
            if _is_not_found(exc):
                raise NotFound(f"no MLflow run {run_id}") from exc
            raise _unavailable(f"reading run {run_id}", exc) from exc

    def versions_tagged(self, model: str, key: str, value: str) -> list[str]:
        """The versions of ``model`` whose tag ``key`` is ``value``.

        Raises:
            RegistryUnavailable: MLflow did not answer.
        """
        safe_model, safe_value = model.replace("'", ""), value.replace("'", "")
        try:
            found = self._client.search_model_versions(
                f"name = '{safe_model}' and tags.`{key}` = '{safe_value}'"
            )
        except Exception as exc:
            if _is_not_found(exc):
                return []
            raise _unavailable(f"searching {model} versions", exc) from exc
        return sorted((str(v.version) for v in found), key=int)

    def delete_version(self, model: str, version: str) -> None:
        """Delete a version (its aliases go with it); one that does not exist is fine.

        Raises:
            RegistryUnavailable: MLflow did not answer.
        """
        try:
            self._client.delete_model_version(model, version)
        except Exception as exc:
            if _is_not_found(exc):
                return
            raise _unavailable(f"deleting {model} version {version}", exc) from exc

    def download_artifact(self, run_id: str, path: str, destination: Path) -> Path:
        """Download one artifact of a run into ``destination`` (a folder); return its path.

        Raises:
            NotFound: the run has no such artifact.
            RegistryUnavailable: MLflow did not answer.
        """
        destination.mkdir(parents=True, exist_ok=True)
        try:
            local = self._client.download_artifacts(run_id, path, str(destination))
        except Exception as exc:
            if _is_not_found(exc) or isinstance(exc, FileNotFoundError | OSError):
                raise NotFound(f"run {run_id} has no artifact {path!r}") from exc
            raise _unavailable(f"downloading {path} of run {run_id}", exc) from exc
        return Path(local)


def _is_not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", None)
    return code in _NOT_FOUND_CODES


def _unavailable(doing: str, exc: Exception) -> RegistryUnavailable:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return RegistryUnavailable(f"MLflow failed {doing}: {first}")
