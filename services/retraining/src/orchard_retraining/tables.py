"""The retraining service's tables (SQLAlchemy 2), made by the migrations in ``migrations/``.

Times are Unix seconds (floats).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Index, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orchard_core.db import NAMING_CONVENTION, IdType

__all__ = ["Base", "ChampionRecord", "PipelineRunRecord", "RolloutRecord", "TriggerRecord"]


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TriggerRecord(Base):
    """Every trigger received, with its reason and what it led to (the audit trail)."""

    __tablename__ = "triggers"
    __table_args__ = (Index(None, "model", "received_at"), Index(None, "outcome"))

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    # The sender's id (evaluation's trigger id, an alert's fingerprint + start): a resend of
    # the same trigger finds this record instead of making another.
    external_id: Mapped[str | None] = mapped_column(String(300), unique=True)
    source: Mapped[str] = mapped_column(String(20))  # evaluation, alertmanager, schedule, manual
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(2000))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(20))  # accepted, deduplicated
    # What it led to: filled in as the pipeline run and rollout progress.
    led_to: Mapped[dict[str, Any]] = mapped_column(JSON)


class RolloutRecord(Base):
    """One rollout: its spec and its state machine's state (decisions included), so a
    restarted controller carries on where it was."""

    __tablename__ = "rollouts"
    __table_args__ = (Index(None, "model", "status"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    candidate_version: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    # Registry actions (aliases) decided but not yet carried out: kept until MLflow has taken
    # them, so an outage or a restart between the decision and the call loses none.
    pending_actions: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, server_default="[]"
    )


class PipelineRunRecord(Base):
    """One training run: what started it, where it runs, how far it got, what it made, and
    the quality gate's judgment of the candidate."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (Index(None, "model", "created_at"), Index(None, "status"))

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    trigger_id: Mapped[int | None] = mapped_column(IdType)
    # pending, running, succeeded, failed, cancelled
    status: Mapped[str] = mapped_column(String(20))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    backend: Mapped[str] = mapped_column(String(20))
    handle: Mapped[str | None] = mapped_column(String(300))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(String(4000))
    candidate_version: Mapped[str | None] = mapped_column(String(100))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(100))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # passed, failed, inconclusive, skipped (null until judged)
    gate_verdict: Mapped[str | None] = mapped_column(String(20))
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rollout_id: Mapped[int | None] = mapped_column(IdType)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)


class ChampionRecord(Base):
    """Each routed model's champion version as last known (from MLflow or a promotion), so
    the route table survives an MLflow outage and a restart."""

    __tablename__ = "champions"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[float] = mapped_column(Float)
