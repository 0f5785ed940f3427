"""Alembic environment: migrations run on the connection the service hands over."""

from __future__ import annotations

import orchard_evaluation.report_store  # noqa: F401 - registers the reports table
from orchard_core.db import run_migrations_here
from orchard_evaluation.tables import Base

run_migrations_here(Base.metadata)
