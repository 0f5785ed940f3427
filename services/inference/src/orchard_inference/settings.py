"""Settings of the inference runtime (environment variables ``ORCHARD_INFERENCE_*``)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from orchard_core import ServiceSettings

__all__ = ["InferenceSettings"]


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
    torch_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description=(
            "torch intra-op threads. Small models gain nothing from more, and every extra "
            "thread competes with the event loop for the few cores a runtime pod gets."
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where torch models run; auto picks CUDA when available."
    )

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

    @field_validator("models")
    @classmethod
    def _check_models(cls, models: dict[str, str]) -> dict[str, str]:
        for name, uri in models.items():
            if not name or "/" in name or ":" in name:
                raise ValueError(f"model name {name!r} must be non-empty without '/' or ':'")
            if not uri.strip():
                raise ValueError(f"model {name!r} has an empty uri")
        return models
