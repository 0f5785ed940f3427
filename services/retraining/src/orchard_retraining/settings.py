"""The retraining service's settings, read from ``ORCHARD_RETRAINING_*`` environment variables."""

from __future__ import annotations

from typing import Annotated, Any

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

    @field_validator("schedules", mode="before")
    @classmethod
    def _parse_schedules(cls, value: Any) -> Any:
        if isinstance(value, str | bytes):
            try:
                value = orjson.loads(value) if value else {}
            except orjson.JSONDecodeError:
                raise ValueError('must be JSON like {"model": "0 3 * * *"}') from None
        return value

    @field_validator("schedules")
    @classmethod
    def _valid_cron(cls, value: dict[str, str]) -> dict[str, str]:
        from croniter import croniter

        for model, expression in value.items():
            if not croniter.is_valid(expression):
                raise ValueError(f"schedule of {model!r} is not a cron expression: {expression!r}")
        return value
