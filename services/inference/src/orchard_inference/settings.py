"""Settings of the inference runtime (environment variables ``ORCHARD_INFERENCE_*``)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from orchard_core import ServiceSettings

__all__ = ["MAX_BATCH_DELAY_MS", "MAX_BATCH_SIZE", "BatchOverride", "InferenceSettings"]

#: Upper bounds of the batching settings: past these, batching only adds latency.
MAX_BATCH_SIZE = 4096
MAX_BATCH_DELAY_MS = 1000.0


class BatchOverride(BaseModel):
    """One model's batching settings in ``ORCHARD_INFERENCE_BATCHING``; unset keys inherit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None
    max_size: int | None = Field(default=None, ge=1, le=MAX_BATCH_SIZE)
    max_delay_ms: float | None = Field(default=None, ge=0.0, le=MAX_BATCH_DELAY_MS)


class InferenceSettings(ServiceSettings):
    """What the runtime serves and how.

    The MLflow tracking server and registry come from the standard ``MLFLOW_TRACKING_URI``
    (and ``MLFLOW_REGISTRY_URI``) variables, read by the MLflow client itself.
    """

    model_config = SettingsConfigDict(
        env_prefix="ORCHARD_INFERENCE_", extra="ignore", frozen=True, protected_namespaces=()
    )

    service_name: str = Field(default="inference", description="Name in logs, metrics, traces.")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port to listen on.")
    # NoDecode: the JSON is parsed below, so a malformed value becomes a validation error that
    # load_settings reports with the variable's name (pydantic-settings would raise its own
    # SettingsError, a traceback without the name).
    models: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description=(
            "Models loaded at start-up, as JSON {name: uri}; a uri is models:/<name>@<alias>, "
            "models:/<name>/<version> or a local MLflow model directory."
        ),
    )
    model_dir: str | None = Field(
        default=None,
        description=(
            "One more model served from this directory, as KServe's storage initializer lays "
            "it out (KServe passes --model_dir=/mnt/models): an MLflow model folder, one "
            "such folder inside it, or one bare scikit-learn (.joblib, .pkl) or TorchScript "
            "(.pt) file."
        ),
    )
    model_name: str = Field(
        default="model",
        description="The name the model_dir model is served under (KServe: --model_name).",
    )
    torch_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description=(
            "torch intra-op threads. Small models gain nothing from more, and every extra "
            "thread competes with the event loop for the few cores a runtime pod gets."
        ),
    )
    native_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description=(
            "Threads of the native pools sklearn and numpy use (OpenMP, OpenBLAS, MKL), "
            "unless OMP_NUM_THREADS etc. are set. On a request path their threads mostly "
            "spin: a credit-risk Pipeline predicted 64 rows in 2.4 ms with 1 thread and "
            "13.6 ms with 2 on a 2-core box."
        ),
    )
    torch_fp16: bool = Field(
        default=False,
        description=(
            "Run torch models in half precision on CUDA (inputs cast to fp16, outputs back "
            "to their declared dtype). Ignored, with a warning, on CPU."
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where torch models run; auto picks CUDA when available."
    )
    batch_enabled: bool = Field(
        default=True,
        description="Merge concurrent requests for one model version into one model call.",
    )
    batch_max_size: int = Field(
        default=64,
        ge=1,
        le=MAX_BATCH_SIZE,
        description="Most rows in one merged model call; a larger request runs alone.",
    )
    batch_max_delay_ms: float = Field(
        default=2.0,
        ge=0.0,
        le=MAX_BATCH_DELAY_MS,
        description=(
            "Longest a queued request waits for batch mates (an idle model never waits); "
            "0 merges only what queued up while the model was busy."
        ),
    )
    batching: Annotated[dict[str, BatchOverride], NoDecode] = Field(
        default_factory=dict,
        description=(
            'Per-model batching, as JSON {"name": {"enabled": false, "max_size": 8, '
            '"max_delay_ms": 1.0}}; keys left out take the BATCH_* values.'
        ),
    )

    load_at_startup: bool = Field(
        default=True,
        description=(
            "Load the configured models at start-up; false: each loads on its first request "
            "(and readiness does not wait for them)."
        ),
    )
    lazy_load_registry: bool = Field(
        default=True,
        description=(
            "Load any other model name on its first request when it resolves as "
            "models:/<name>@champion in the MLflow registry (a name that does not is 404). "
            "Only when a registry is configured (MLFLOW_TRACKING_URI or MLFLOW_REGISTRY_URI): "
            "without one MLflow would create an empty local store on the first unknown name."
        ),
    )
    memory_budget_mb: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Memory (MiB) the loaded models may hold, estimated as the bytes of each model's "
            "files; least recently used models are evicted past it. Unset: no limit."
        ),
    )
    max_models: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Model versions held in memory at most (start-up ones included); least recently "
            "used ones are evicted past it and load again on their next request. Unset: no limit."
        ),
    )
    load_retry_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description=(
            "Back-off before a request loads a failed model again; it doubles with each "
            "consecutive failure, up to 10 minutes."
        ),
    )

    @property
    def startup_models(self) -> dict[str, str]:
        """Every model loaded at start-up: ``models`` plus the ``model_dir`` one, if any."""
        if self.model_dir is None:
            return dict(self.models)
        return {**self.models, self.model_name: self.model_dir}

    @field_validator("models", mode="before")
    @classmethod
    def _parse_models(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return {}
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f'must be a JSON object {{"name": "uri", ...}}; not valid JSON: {exc}'
            ) from None

    @field_validator("batching", mode="before")
    @classmethod
    def _parse_batching(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    'must be a JSON object {"name": {"enabled": ..., "max_size": ..., '
                    f'"max_delay_ms": ...}}}}; not valid JSON: {exc}'
                ) from None
        if not isinstance(value, dict):
            return value  # pydantic says what it should be
        parsed: dict[str, BatchOverride] = {}
        for name, entry in value.items():
            try:
                parsed[name] = BatchOverride.model_validate(entry)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
                    for err in exc.errors()
                )
                raise ValueError(f"model {name!r}: {problems}") from None
        return parsed

    @field_validator("models")
    @classmethod
    def _check_models(cls, models: dict[str, str]) -> dict[str, str]:
        for name, uri in models.items():
            if not name or "/" in name or ":" in name:
                raise ValueError(f"model name {name!r} must be non-empty without '/' or ':'")
            if not uri.strip():
                raise ValueError(f"model {name!r} has an empty uri")
        return models

    @field_validator("model_name")
    @classmethod
    def _check_model_name(cls, name: str) -> str:
        if not name or "/" in name or ":" in name:
            raise ValueError(f"model name {name!r} must be non-empty without '/' or ':'")
        return name

    @field_validator("model_dir")
    @classmethod
    def _check_model_dir(cls, path: str | None) -> str | None:
        if path is not None and not path.strip():
            return None  # an empty variable means "not set"
        return path
