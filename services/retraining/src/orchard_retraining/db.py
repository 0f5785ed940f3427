"""The retraining service's database: :mod:`orchard_core.db` with its own migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from sqlalchemy import Engine

from orchard_core import db as core
from orchard_core.db import open_engine

__all__ = ["MIGRATIONS", "Database", "migrate", "open_engine"]

MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` with this service's migrations."""
    core.migrate(engine, MIGRATIONS, revision)


class Database(core.Database):
    """The retraining database."""

    migrations = MIGRATIONS
