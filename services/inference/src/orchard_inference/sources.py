"""Where models come from: resolving a model URI to a registry version and local files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "LOCAL_VERSION",
    "SKLEARN_SUFFIXES",
    "TORCHSCRIPT_SUFFIXES",
    "MlflowModelSource",
    "ModelLocation",
    "ModelSource",
    "find_model",
]

#: The version a model gets when it comes from a directory or a run, not the registry.
LOCAL_VERSION = "1"
_MODELS = "models:/"
_MLMODEL = "MLmodel"
#: Bare scikit-learn files, as KServe's sklearn format stores them (joblib or pickle).
SKLEARN_SUFFIXES = (".joblib", ".pkl", ".pickle")
#: Bare TorchScript files (``torch.jit.save``).
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".torchscript")
_KNOWN = ", ".join(SKLEARN_SUFFIXES + TORCHSCRIPT_SUFFIXES)


@dataclass(frozen=True, slots=True)
class ModelLocation:
    """A resolved model URI: its concrete version and where its files are."""

    uri: str
    version: str
    #: A local directory (served in place) or None when ``artifact_uri`` must be downloaded.
    local_path: str | None
    artifact_uri: str | None = None
    #: A bare model file (scikit-learn joblib/pickle, TorchScript) that ``fetch`` wraps as an
    #: MLflow model, so every flavor loader sees the same layout.
    model_file: str | None = None


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


def _visible(path: str) -> list[str]:
    # KServe's storage initializer and `kubectl cp` leave dot-files (.gitkeep, lost+found is
    # a folder too, on volumes); they are never the model.
    return sorted(
        entry for entry in os.listdir(path) if not entry.startswith(".") and entry != "lost+found"
    )


def find_model(path: str) -> tuple[str, str | None]:
    """Where the model is in ``path``, a folder as KServe's storage initializer fills it.

    Accepted layouts, in this order: ``path`` is an MLflow model folder (has ``MLmodel``);
    ``path`` holds exactly one entry, an MLflow model folder; ``path`` is, or holds exactly one,
    bare model file: scikit-learn (``.joblib``, ``.pkl``, ``.pickle``) or TorchScript
    (``.pt``, ``.pth``, ``.torchscript``).

    Returns:
        ``(directory, None)`` for an MLflow model folder, ``(path, file)`` for a bare file.

    Raises:
        FileNotFoundError: nothing there, or nothing recognisable; the message lists what is.
    """
    if os.path.isfile(path):
        if path.endswith(SKLEARN_SUFFIXES + TORCHSCRIPT_SUFFIXES):
            return os.path.dirname(os.path.abspath(path)), os.path.abspath(path)
        raise FileNotFoundError(f"{path} is a file but not a known model file ({_KNOWN})")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no MLflow model at {path}: no such directory")
    if os.path.isfile(os.path.join(path, _MLMODEL)):
        return os.path.abspath(path), None
    entries = _visible(path)
    if len(entries) == 1:
        only = os.path.join(path, entries[0])
        if os.path.isfile(os.path.join(only, _MLMODEL)):
            return os.path.abspath(only), None
    files = [e for e in entries if e.endswith(SKLEARN_SUFFIXES + TORCHSCRIPT_SUFFIXES)]
    if len(files) == 1 and os.path.isfile(os.path.join(path, files[0])):
        return os.path.abspath(path), os.path.abspath(os.path.join(path, files[0]))
    shown = ", ".join(entries[:10]) + (", ..." if len(entries) > 10 else "") or "nothing"
    if len(files) > 1:
        raise FileNotFoundError(
            f"more than one model file in {path} ({', '.join(files)}); keep exactly one"
        )
    raise FileNotFoundError(
        f"no MLflow model at {path}: no MLmodel file, and no single MLflow model folder or "
        f"bare model file ({_KNOWN}) in it; found: {shown}"
    )


def _wrap_model_file(model_file: str, into: str) -> str:
    """Save the bare model in ``model_file`` as an MLflow model folder under ``into``.

    The file is deserialized once here and once more by the flavor loader; that costs a
    start-up second at most and keeps one loading path for every flavor.
    """
    target = os.path.join(into, "model")
    if model_file.endswith(TORCHSCRIPT_SUFFIXES):
        import mlflow.pytorch
        import torch

        try:
            module = torch.jit.load(model_file, map_location="cpu")  # type: ignore[no-untyped-call]
        except RuntimeError as exc:
            raise ValueError(
                f"{model_file} is not a TorchScript file (torch.jit.save); save an eager "
                "model with mlflow.pytorch.save_model instead"
            ) from exc
        # pip_requirements given: inferring them starts a subprocess and takes seconds.
        mlflow.pytorch.save_model(
            module, target, serialization_format="pickle", pip_requirements=["torch"]
        )
        return target
    import joblib
    import mlflow.sklearn

    estimator = joblib.load(model_file)  # reads plain pickles too
    if not hasattr(estimator, "predict"):
        raise ValueError(f"{model_file} holds a {type(estimator).__name__}, not an estimator")
    mlflow.sklearn.save_model(
        estimator,
        target,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        pip_requirements=["scikit-learn"],
    )
    return target


class MlflowModelSource:
    """Resolves ``models:/name@alias``, ``models:/name/<version|latest>`` and local paths.

    A local path is an MLflow model folder or a folder as KServe's storage initializer fills
    ``/mnt/models`` (see ``find_model``); bare scikit-learn and TorchScript files are wrapped
    as MLflow models when fetched. The tracking and registry URIs default to MLflow's own
    resolution (``MLFLOW_TRACKING_URI``, ``MLFLOW_REGISTRY_URI``). Other artifact URIs
    (``runs:/``, ``s3://``, ...) are downloaded and served as version ``1``.
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
        folder, model_file = find_model(path)
        if model_file is not None:
            return ModelLocation(uri, LOCAL_VERSION, None, model_file, model_file=model_file)
        return ModelLocation(uri, LOCAL_VERSION, folder)

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
        if location.model_file is not None:
            return _wrap_model_file(location.model_file, into)
        import mlflow.artifacts

        path: str = mlflow.artifacts.download_artifacts(
            artifact_uri=location.artifact_uri,
            dst_path=into,
            tracking_uri=self._tracking_uri,
            registry_uri=self._registry_uri,
        )
        return path
