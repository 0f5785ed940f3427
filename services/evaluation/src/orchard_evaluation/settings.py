"""The evaluation service's settings, read from ``ORCHARD_EVALUATION_*`` environment variables."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from orchard_core import ServiceSettings

__all__ = ["EvaluationSettings"]

MIB = 1024 * 1024
DAY_S = 86_400


class EvaluationSettings(ServiceSettings):
    """Everything the evaluation service can be told at start-up."""

    model_config = SettingsConfigDict(env_prefix="ORCHARD_EVALUATION_", extra="ignore", frozen=True)

    service_name: str = Field(default="evaluation", description="Name in logs, metrics and traces.")
    port: int = Field(default=8002, ge=1, le=65535, description="TCP port to listen on.")
    database_url: str = Field(
        default="sqlite:///.orchard/evaluation.db",
        description=(
            "SQLAlchemy URL of the service's own database: a SQLite file by default, "
            "postgresql+psycopg://user:password@host/db in a cluster."
        ),
    )
    max_body_bytes: int = Field(
        default=32 * MIB, ge=1, description="Largest request body accepted (then 413)."
    )
    max_batch_items: int = Field(
        default=10_000,
        ge=1,
        description="Most events or feedback items in one POST (then 413: send smaller batches).",
    )
    bucket_s: int = Field(
        default=60,
        ge=1,
        le=DAY_S,
        description=(
            "Width of the time buckets window profiles are kept in. A drift verdict over any "
            "range merges the buckets it covers, so this is the finest range it can tell."
        ),
    )
    rollup_s: int = Field(
        default=3_600,
        ge=1,
        description=(
            "Width of the rollup buckets (a multiple of bucket_s): a range is answered with "
            "the rollups inside it plus the fine buckets at its edges. Changing either width "
            "leaves profiles stored at the old widths out of later answers."
        ),
    )
    drift_min_rows: int = Field(
        default=500,
        ge=1,
        description=(
            "Fewest values a column needs in a range for a drift verdict (fewer: no verdict). "
            "Below 500 a distance at Evidently's 0.1 threshold is mostly sampling noise: 72% "
            "of no-change windows of 100 rows exceed it for a normal feature, 4.5% at 500."
        ),
    )
    profile_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="How often newly ingested events are folded into the window profiles.",
    )
    profile_batch_size: int = Field(
        default=5_000, ge=1, description="Most events folded into window profiles at a time."
    )
    retention_days: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Raw events and labels older than this are deleted (once profiled); the window "
            "profiles built from them are kept, so drift over old ranges stays answerable."
        ),
    )
    retention_interval_s: float = Field(
        default=3_600.0, gt=0, description="How often expired raw events are deleted."
    )
    retraining_url: str | None = Field(
        default=None,
        description=(
            "Retraining service base URL; drift and quality triggers are posted to its "
            "/v1/triggers. Unset: triggers are recorded (GET /v1/triggers) but not sent."
        ),
    )
    trigger_cooldown_s: float = Field(
        default=6 * 3_600.0,
        ge=0,
        description="After a trigger of one kind for a model, further ones are deduplicated.",
    )
    trigger_max_age_s: float = Field(
        default=DAY_S,
        gt=0,
        description="How long an undelivered trigger is retried before it is marked failed.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "ORCHARD_EVALUATION_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"
        ),
        description=(
            "MLflow, where each version's reference profile is found (also read from the "
            "standard MLFLOW_TRACKING_URI). Unset: profiles come only from PUT /v1/profiles."
        ),
    )
    reference_retry_s: float = Field(
        default=60.0,
        gt=0,
        description="How long before MLflow is asked again for a reference it did not have.",
    )
    reference_wait_s: float = Field(
        default=600.0,
        gt=0,
        description=(
            "How long events of a version with no reference profile wait to be profiled; "
            "after that they are kept for error rates and exports but left out of drift."
        ),
    )
    monitor_interval_s: float = Field(
        default=300.0,
        ge=0,
        description="How often every active version is evaluated in the background (0: never).",
    )
    monitor_window_s: float = Field(
        default=3_600.0,
        gt=0,
        description="The range background drift is judged over (and what makes a version active).",
    )
    quality_window_s: float = Field(
        default=DAY_S,
        gt=0,
        description="The range background quality (realized, estimated, concept drift) covers.",
    )
    quality_drop_tolerance: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Accuracy this far below the version's training accuracy is a quality drop.",
    )
    min_labels: int = Field(
        default=100,
        ge=1,
        description="Fewest labels before realized accuracy is trusted over the estimate.",
    )
    concept_drift_method: str = Field(
        default="adwin",
        description="The concept drift detector on the error stream: adwin, page_hinkley or ddm.",
    )
    reports_dir: str = Field(
        default=".orchard/reports",
        description="Folder Evidently HTML reports are written to (the service never prunes it).",
    )

    report_interval_s: float = Field(
        default=float(DAY_S),
        ge=0,
        description=(
            "How often an Evidently HTML report is made for each version with traffic in the "
            "last interval (0: never)."
        ),
    )

    @field_validator("concept_drift_method")
    @classmethod
    def _known_detector(cls, value: str) -> str:
        from orchard_evaluation.quality import detector_methods

        known = detector_methods()
        normalized = value.strip().lower().replace("-", "_")
        if normalized not in known:
            raise ValueError(f"unknown detector {value!r}; known: {', '.join(known)}")
        return normalized

    @model_validator(mode="after")
    def _rollup_of_buckets(self) -> EvaluationSettings:
        if self.rollup_s % self.bucket_s:
            raise ValueError(
                f"rollup_s ({self.rollup_s}) must be a multiple of bucket_s ({self.bucket_s})"
            )
        return self
