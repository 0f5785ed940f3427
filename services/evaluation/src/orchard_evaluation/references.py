"""Reference profiles per model version: stored here, registered by API or found in MLflow.

Training stores each version's profile next to its model files
(``models:/<name>/<version>/reference_profile.json``) and its holdout metrics as version tags
(see ``orchard_pipelines.tracking.publish_version``). The first time evaluation needs a
version's reference it looks in its own database, then asks MLflow, and keeps what it found.
A version MLflow does not have (or an MLflow that is down) is asked again only after
``retry_s``, so a busy ingest never hammers the registry. ``PUT /v1/profiles/...`` registers
a profile by hand (a model trained outside Orchard) and replaces one found before.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from sqlalchemy import select

from orchard_core.errors import InvalidInput
from orchard_core.profiles import ReferenceProfile
from orchard_evaluation.db import Database
from orchard_evaluation.tables import ReferenceProfileRow

__all__ = ["MlflowReferenceLoader", "Reference", "ReferenceLoader", "ReferenceStore"]

_log = logging.getLogger("orchard.evaluation.references")
PROFILE_ARTIFACT: Final = "reference_profile.json"


@dataclass(frozen=True)
class Reference:
    """A model version's reference profile and its training-time metrics."""

    model: str
    version: str
    profile: ReferenceProfile
    metrics: dict[str, float] = field(default_factory=dict)
    source: str = "api"
    created_at: float = 0.0

    def summary(self) -> dict[str, Any]:
        """What ``GET /v1/profiles`` lists (the profile itself left out)."""
        return {
            "model": self.model,
            "version": self.version,
            "source": self.source,
            "created_at": self.created_at,
            "n_rows": self.profile.n_rows,
            "features": sorted(self.profile.features),
            "outputs": sorted(self.profile.outputs),
            "metrics": self.metrics,
        }


class ReferenceLoader(Protocol):
    """Finds a version's reference elsewhere (MLflow); None when it has none."""

    def load(self, model: str, version: str) -> tuple[dict[str, Any], dict[str, float], str] | None:
        """The profile as JSON data, the metrics, and where it came from."""
        ...


class MlflowReferenceLoader:
    """Reads ``reference_profile.json`` and the metric tags of a registered model version."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri

    def load(self, model: str, version: str) -> tuple[dict[str, Any], dict[str, float], str] | None:
        import orjson
        from mlflow import MlflowClient
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        client = MlflowClient(self.tracking_uri)
        try:
            found = client.get_model_version(model, version)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        uri = f"models:/{model}/{version}/{PROFILE_ARTIFACT}"
        with tempfile.TemporaryDirectory(prefix="orchard-reference-") as tmp:
            try:
                # Through the version's own location: a models:/ URI would be resolved
                # against the process-wide registry, not this loader's.
                where = client.get_model_version_download_uri(model, version).rstrip("/")
                path = download_artifacts(
                    artifact_uri=f"{where}/{PROFILE_ARTIFACT}",
                    dst_path=tmp,
                    tracking_uri=self.tracking_uri,
                )
            except (MlflowException, OSError) as exc:
                _log.warning("%s has no reference profile: %s", uri, exc)
                return None
            data = orjson.loads(Path(path).read_bytes())
        return data, _metric_tags(found.tags or {}), uri


class ReferenceStore:
    """Reference profiles by (model, version), kept in the database and in memory."""

    def __init__(
        self, database: Database, loader: ReferenceLoader | None = None, retry_s: float = 60.0
    ) -> None:
        self._db = database
        self._loader = loader
        self._retry_s = retry_s
        self._cache: dict[tuple[str, str], Reference] = {}
        self._missing: dict[tuple[str, str], float] = {}  # key -> when to ask again
        self._lock = threading.Lock()

    def get(self, model: str, version: str, now: float | None = None) -> Reference | None:
        """The version's reference: from memory, the database or the loader, else None."""
        key = (model, version)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        with self._db.session() as session:
            row = session.get(ReferenceProfileRow, key)
            if row is not None:
                return self._remember(_reference(row))
        at = time.time() if now is None else now
        if self._loader is None or self._missing.get(key, 0.0) > at:
            return None
        try:
            found = self._loader.load(model, version)
        except Exception as exc:  # the registry may be down, or answer nonsense: try later
            _log.warning("cannot fetch the reference of %s version %s: %s", model, version, exc)
            found = None
        if found is None:
            self._missing[key] = at + self._retry_s
            return None
        data, metrics, source = found
        try:
            return self.put(model, version, data, metrics, source)
        except InvalidInput as exc:
            _log.error("the reference profile at %s is unusable: %s", source, exc)
            self._missing[key] = at + self._retry_s
            return None

    def put(
        self,
        model: str,
        version: str,
        profile: Mapping[str, Any],
        metrics: Mapping[str, Any] | None = None,
        source: str = "api",
    ) -> Reference:
        """Check and store a version's reference, replacing any before it.

        Raises:
            InvalidInput: the profile or the metrics are malformed.
        """
        try:
            parsed = ReferenceProfile.from_dict(profile)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a valid reference profile: {_reason(exc)}") from None
        clean = _metrics(metrics or {})
        now = time.time()
        with self._db.session() as session, session.begin():
            row = session.get(ReferenceProfileRow, (model, version))
            if row is None:
                row = ReferenceProfileRow(model=model, version=version)
                session.add(row)
            row.profile = parsed.to_dict()
            row.metrics = clean
            row.source = source[:500]
            row.created_at = now
        self._missing.pop((model, version), None)
        return self._remember(Reference(model, version, parsed, clean, source, now))

    def list(self, model: str | None = None) -> list[Reference]:
        """Every stored reference (of ``model``), by model and version."""
        with self._db.session() as session:
            query = select(ReferenceProfileRow).order_by(
                ReferenceProfileRow.model, ReferenceProfileRow.version
            )
            if model is not None:
                query = query.where(ReferenceProfileRow.model == model)
            return [_reference(row) for row in session.scalars(query)]

    def _remember(self, reference: Reference) -> Reference:
        with self._lock:
            self._cache[(reference.model, reference.version)] = reference
        return reference


def _reference(row: ReferenceProfileRow) -> Reference:
    return Reference(
        row.model,
        row.version,
        ReferenceProfile.from_dict(row.profile),
        dict(row.metrics or {}),
        row.source,
        row.created_at,
    )


def _metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    clean: dict[str, float] = {}
    for name, value in metrics.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidInput(f"metric {name!r} must be a finite number")
        clean[str(name)] = float(value)
    return clean


def _metric_tags(tags: Mapping[str, str]) -> dict[str, float]:
    """Version tags that are numbers (the holdout metrics training tagged it with)."""
    metrics: dict[str, float] = {}
    for name, text in tags.items():
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isfinite(value):
            metrics[name] = value
    return metrics


def _reason(exc: Exception) -> str:
    return f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
