"""initial schema: events, labels, window and reference profiles, KServe logger halves

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cloudevent_halves",
        sa.Column("ce_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("ce_id", "kind", name=op.f("pk_cloudevent_halves")),
    )
    with op.batch_alter_table("cloudevent_halves", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cloudevent_halves_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("route_arm", sa.String(length=100), nullable=False),
        sa.Column("experiment", sa.String(length=200), nullable=True),
        sa.Column("unit", sa.String(length=200), nullable=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("trace_id", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("profiled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("request_id", "shadow", name=op.f("uq_events_request_id_shadow")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_events_experiment_ts"), ["experiment", "ts"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_events_model_version_ts"), ["model", "version", "ts"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_events_ts"), ["ts"], unique=False)
        batch_op.create_index(
            "ix_events_unprofiled",
            ["id"],
            unique=False,
            postgresql_where=sa.text("NOT profiled"),
            sqlite_where=sa.text("profiled = 0"),
        )

    op.create_table(
        "labels",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("label", sa.JSON(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
        sa.UniqueConstraint("request_id", name=op.f("uq_labels_request_id")),
    )
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_labels_ts"), ["ts"], unique=False)

    op.create_table(
        "reference_profiles",
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("model", "version", name=op.f("pk_reference_profiles")),
    )
    op.create_table(
        "window_profiles",
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "model", "version", "bucket_start", name=op.f("pk_window_profiles")
        ),
    )


def downgrade() -> None:
    op.drop_table("window_profiles")
    op.drop_table("reference_profiles")
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_labels_ts"))

    op.drop_table("labels")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_events_unprofiled",
            postgresql_where=sa.text("NOT profiled"),
            sqlite_where=sa.text("profiled = 0"),
        )
        batch_op.drop_index(batch_op.f("ix_events_ts"))
        batch_op.drop_index(batch_op.f("ix_events_model_version_ts"))
        batch_op.drop_index(batch_op.f("ix_events_experiment_ts"))

    op.drop_table("events")
    with op.batch_alter_table("cloudevent_halves", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cloudevent_halves_received_at"))

    op.drop_table("cloudevent_halves")
