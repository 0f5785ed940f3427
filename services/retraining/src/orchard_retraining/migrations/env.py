"""Alembic environment: migrations run on the connection the service hands over."""

from __future__ import annotations

from alembic import context

from orchard_retraining.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the service always passes one
    raise RuntimeError("run migrations through orchard_retraining.db.migrate")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
