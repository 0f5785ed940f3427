"""window profiles at two widths: fine buckets and hourly rollups

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from orchard_core.profiles import WindowProfile, merge_windows

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The widths in force before this revision (the settings' defaults).
FINE_S = 60
ROLLUP_S = 3_600


def upgrade() -> None:
    with op.batch_alter_table("window_profiles", recreate="always") as batch_op:
        batch_op.add_column(
            sa.Column("width_s", sa.Integer(), nullable=False, server_default=str(FINE_S))
        )
        batch_op.drop_constraint("pk_window_profiles", type_="primary")
        batch_op.create_primary_key(
            "pk_window_profiles", ["model", "version", "width_s", "bucket_start"]
        )
    # Roll the fine buckets stored so far up into hours, as the profiler now does on write.
    table = sa.table(
        "window_profiles",
        sa.column("model", sa.String),
        sa.column("version", sa.String),
        sa.column("width_s", sa.Integer),
        sa.column("bucket_start", sa.BigInteger),
        sa.column("n_rows", sa.Integer),
        sa.column("data", sa.LargeBinary),
        sa.column("updated_at", sa.Float),
    )
    bind = op.get_bind()
    hours: dict[tuple[str, str, int], list[WindowProfile]] = defaultdict(list)
    latest: dict[tuple[str, str, int], float] = {}
    for row in bind.execute(sa.select(table).where(table.c.width_s == FINE_S)):
        key = (row.model, row.version, row.bucket_start - row.bucket_start % ROLLUP_S)
        hours[key].append(WindowProfile.from_bytes(row.data))
        latest[key] = max(latest.get(key, 0.0), row.updated_at)
    for (model, version, start), windows in hours.items():
        merged = merge_windows(windows)
        bind.execute(
            table.insert().values(
                model=model,
                version=version,
                width_s=ROLLUP_S,
                bucket_start=start,
                n_rows=merged.n_rows,
                data=merged.to_bytes(),
                updated_at=latest[(model, version, start)],
            )
        )


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM window_profiles WHERE width_s <> :fine").bindparams(fine=FINE_S)
    )
    with op.batch_alter_table("window_profiles", recreate="always") as batch_op:
        batch_op.drop_constraint("pk_window_profiles", type_="primary")
        batch_op.create_primary_key("pk_window_profiles", ["model", "version", "bucket_start"])
        batch_op.drop_column("width_s")
