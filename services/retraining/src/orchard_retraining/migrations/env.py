"""Alembic environment: migrations run on the connection the service hands over."""

from __future__ import annotations

from orchard_core.db import run_migrations_here
from orchard_retraining.tables import Base

run_migrations_here(Base.metadata)
