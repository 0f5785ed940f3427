"""The evaluation service's tables (SQLAlchemy 2). Alembic migrations in ``migrations/``
create them; a test checks the two never drift apart.

Times are Unix seconds (floats), the form events arrive in, so ranges compare as numbers on
SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orchard_core.db import NAMING_CONVENTION, IdType

__all__ = [
    "Base",
    "CloudEventHalf",
    "Event",
    "Label",
    "ReferenceProfileRow",
    "TriggerRow",
    "WindowProfileRow",
]


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON}


class Event(Base):
    """One prediction (or a shadow's) as the gateway or KServe's logger reported it."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("request_id", "shadow"),
        Index(None, "model", "version", "ts"),
        Index(None, "experiment", "ts"),
        Index(None, "ts"),
        # Only the events not yet folded into window profiles: small, and what the
        # profiler scans.
        Index(
            "ix_events_unprofiled",
            "id",
            postgresql_where=text("NOT profiled"),
            sqlite_where=text("profiled = 0"),
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(200))
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    route_arm: Mapped[str] = mapped_column(String(100), default="")
    experiment: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(200))
    ts: Mapped[float] = mapped_column(Float)
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    n_rows: Mapped[int] = mapped_column(Integer)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[float] = mapped_column(Float)
    profiled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Label(Base):
    """The ground truth (``label``) and/or business outcome (``value``) of one request."""

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(200), unique=True)
    label: Mapped[Any] = mapped_column(JSON, nullable=True)
    value: Mapped[float | None] = mapped_column(Float)
    ts: Mapped[float] = mapped_column(Float, index=True)
    received_at: Mapped[float] = mapped_column(Float)


class WindowProfileRow(Base):
    """A mergeable profile of one model version's traffic in one time bucket: a fine one
    (``width_s`` = bucket_s) or an hourly rollup of them (``width_s`` = rollup_s)."""

    __tablename__ = "window_profiles"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    width_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n_rows: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[float] = mapped_column(Float)


class ReferenceProfileRow(Base):
    """A model version's reference profile (its training data), from MLflow or the API."""

    __tablename__ = "reference_profiles"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The version's holdout metrics at training time: the baseline quality is judged against.
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    source: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[float] = mapped_column(Float)


class CloudEventHalf(Base):
    """The request or the response of a KServe logger pair, kept until the other arrives."""

    __tablename__ = "cloudevent_halves"

    ce_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON)
    data: Mapped[Any] = mapped_column(JSON, nullable=True)
    received_at: Mapped[float] = mapped_column(Float, index=True)


class TriggerRow(Base):
    """A retraining trigger (drift detected, quality degraded), kept as an audit record."""

    __tablename__ = "triggers"
    __table_args__ = (Index(None, "model", "kind", "created_at"), Index(None, "status"))

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str] = mapped_column(String(2000))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(String(2000))
    sent_at: Mapped[float | None] = mapped_column(Float)
