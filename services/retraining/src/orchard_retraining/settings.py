"""The retraining service's settings, read from ``ORCHARD_RETRAINING_*`` environment variables."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from orchard_core import ServiceSettings

__all__ = ["RetrainingSettings"]

MIB = 1024 * 1024


class RetrainingSettings(ServiceSettings):
    """Everything the retraining service can be told at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="ORCHARD_RETRAINING_", extra="ignore", frozen=True, populate_by_name=True
    )

    service_name: str = Field(default="retraining", description="Name in logs, metrics and traces.")
    port: int = Field(default=8003, ge=1, le=65535, description="TCP port to listen on.")
    database_url: str = Field(
        default="sqlite:///.orchard/retraining.db",
        description=(
            "SQLAlchemy URL of the service's own database: a SQLite file by default, "
            "postgresql+psycopg://user:password@host/db in a cluster."
        ),
    )
    max_body_bytes: int = Field(
        default=4 * MIB, ge=1, description="Largest request body accepted (then 413)."
    )
    trigger_cooldown_s: float = Field(
        default=3_600.0,
        ge=0,
        description=(
            "After a trigger for a model is accepted, later ones for it are recorded as "
            "deduplicated until this has passed: one incident, one retraining."
        ),
    )
    trigger_retry_after_s: float = Field(
        default=900.0,
        ge=0,
        description=(
            "When what the last accepted trigger set off ended without shipping anything (the "
            "run failed, the gate did not pass the candidate), a new trigger for the model is "
            "accepted this long after that end, within the cooldown: the incident goes on and "
            "more data has arrived."
        ),
    )
    schedules: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description=(
            'Cron schedules per model, as JSON {"credit-risk": "0 3 * * *"}: each firing is '
            "a trigger of kind 'schedule' (UTC)."
        ),
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "ORCHARD_RETRAINING_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"
        ),
        description="MLflow: runs, registered versions and the aliases champion and challenger.",
    )
    evaluation_url: str | None = Field(
        default=None,
        description="The evaluation service, whose GET /v1/compare judges every rollout step.",
    )

    evaluation_timeout_s: float = Field(
        default=10.0, gt=0, description="How long one question to evaluation may take."
    )
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            'Models the route table serves, as JSON ["credit-risk", "digits"]: each routed to '
            "its champion (MLflow alias), plus its candidate while a rollout runs. Models with "
            "a rollout are routed too."
        ),
    )
    traffic_backend: Literal["local", "kubernetes"] = Field(
        default="local",
        description=(
            "Where candidate versions are served: 'local' loads them into the runtime at "
            "RUNTIME_URL; 'kubernetes' creates one KServe InferenceService per version."
        ),
    )
    runtime_url: str | None = Field(
        default=None,
        description=(
            "The inference runtime that serves every version (traffic_backend 'local'): "
            "candidates are loaded into it through the OIP repository extension."
        ),
    )
    pipeline_backend: Literal["local", "kubernetes"] = Field(
        default="local",
        description=(
            "Where training runs: 'local' as a subprocess of this service, 'kubernetes' as a Job."
        ),
    )
    pipeline_command: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [sys.executable, "-m", "orchard_pipelines.retrain"],
        description=(
            "The training step's command line (JSON list); the run's arguments are appended "
            "(--model, --tracking-uri, --production-data, --trigger-id, --pipeline-run-id, "
            "--json)."
        ),
    )
    training_image: str | None = Field(
        default=None,
        description=(
            "The image training Jobs run (pipeline_backend 'kubernetes'; required there)."
        ),
    )
    training_service_account: str | None = Field(
        default="orchard-training",
        description=(
            "ServiceAccount training Jobs run as (pipeline_backend 'kubernetes'); empty: the "
            "namespace's default."
        ),
    )
    run_as_user: int = Field(
        default=10001,
        ge=1,
        description=(
            "User id training Jobs run as (the Orchard images' non-root user); Kubernetes "
            "backends only."
        ),
    )
    kserve_runtime: str = Field(
        default="orchard-registry",
        description=(
            "The ClusterServingRuntime of the InferenceServices this service creates "
            "(traffic_backend 'kubernetes'): one that loads models:/<name>/<version> from MLflow "
            "itself, so versions are served by their registered name and version."
        ),
    )
    kserve_deployment_mode: Literal["RawDeployment", "Serverless"] = Field(
        default="RawDeployment",
        description=(
            "How KServe runs those InferenceServices: RawDeployment (Deployment + HPA) or "
            "Serverless (Knative)."
        ),
    )
    kserve_service_account: str | None = Field(
        default="orchard-models",
        description=(
            "ServiceAccount those InferenceServices run as; empty: the namespace's default."
        ),
    )
    kserve_gpu_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            'Models whose InferenceServices run on GPU nodes, as JSON ["digits"]: one '
            "nvidia.com/gpu each, on nodes labelled nvidia.com/gpu.present=true, tolerating the "
            "nvidia.com/gpu taint (NVIDIA's device plugin and GPU feature discovery)."
        ),
    )
    kserve_payload_logger: bool = Field(
        default=False,
        description=(
            "Also log every request to those InferenceServices to evaluation through KServe's "
            "payload logger. Off: the gateway already logs each prediction it routes, with its "
            "arm, and both would count it twice."
        ),
    )
    runs_dir: Path = Field(
        default=Path(".orchard/runs"),
        description="Folder for local pipeline runs' logs (one file per run).",
    )
    training_window_s: float = Field(
        default=30 * 86_400.0,
        gt=0,
        description=(
            "How far back labeled production data is taken for retraining (evaluation's "
            "export since now minus this): recent enough to be what the model faces now."
        ),
    )
    max_concurrent_runs: int = Field(
        default=1, ge=1, description="Most pipeline runs at once; later ones wait (pending)."
    )
    pipeline_timeout_s: float = Field(
        default=3_600.0, gt=0, description="A pipeline run still going after this is failed."
    )
    auto_retrain: bool = Field(
        default=True, description="Whether an accepted trigger starts a pipeline run by itself."
    )
    auto_rollout: bool = Field(
        default=True,
        description=(
            "Whether a candidate that passes the quality gate is rolled out by itself "
            "(with ROLLOUT_DEFAULTS)."
        ),
    )
    rollout_defaults: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict,
        description=(
            "Rollout settings for automatic rollouts and the defaults of started ones, as JSON "
            '(e.g. {"steps": [5, 25, 50, 100], "step_interval_s": 300}); any RolloutSpec '
            "setting but model and versions."
        ),
    )
    gate: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict,
        description=(
            "The quality gate, as JSON: metrics [{metric, margin, min_improvement}], "
            "confidence, n_resamples, min_holdout, threshold. Empty: ROC AUC (binary) or "
            "accuracy (multiclass) with margin 0.01 at 95 %."
        ),
    )
    controller_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the controller moves rollouts and pipeline runs along.",
    )
    champion_refresh_s: float = Field(
        default=30.0,
        gt=0,
        description="How often each model's champion alias is read again from MLflow.",
    )

    @field_validator("schedules", "rollout_defaults", "gate", mode="before")
    @classmethod
    def _parse_object(cls, value: Any) -> Any:
        if isinstance(value, str | bytes):
            try:
                value = orjson.loads(value) if value else {}
            except orjson.JSONDecodeError:
                raise ValueError("must be a JSON object") from None
        return value

    @field_validator("training_service_account", "kserve_service_account", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        # An empty variable (what a chart renders for "none") means the namespace's default.
        return None if value == "" else value

    @field_validator("models", "pipeline_command", "kserve_gpu_models", mode="before")
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        if isinstance(value, str | bytes):
            try:
                value = orjson.loads(value) if value else []
            except orjson.JSONDecodeError:
                raise ValueError('must be a JSON list like ["a", "b"]') from None
        return value

    @field_validator("rollout_defaults")
    @classmethod
    def _valid_rollout_defaults(cls, value: dict[str, Any]) -> dict[str, Any]:
        from orchard_retraining.rollouts import RolloutSpec

        fixed = {"model", "champion_version", "candidate_version"} & set(value)
        if fixed:
            raise ValueError(f"may not set {', '.join(sorted(fixed))}")
        # A spec with placeholder versions checks every default the way a started one would.
        RolloutSpec.from_dict(
            {"model": "m", "champion_version": "1", "candidate_version": "2"} | value
        )
        return value

    @field_validator("gate")
    @classmethod
    def _valid_gate(cls, value: dict[str, Any]) -> dict[str, Any]:
        from orchard_retraining.runs.gate_step import gate_config

        gate_config(value)  # raises ValueError naming what is wrong
        return value

    @field_validator("schedules")
    @classmethod
    def _valid_cron(cls, value: dict[str, str]) -> dict[str, str]:
        from croniter import croniter

        for model, expression in value.items():
            if not croniter.is_valid(expression):
                raise ValueError(f"schedule of {model!r} is not a cron expression: {expression!r}")
        return value
