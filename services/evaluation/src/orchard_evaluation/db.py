"""The database: engine, schema migrations (Alembic) and sessions.

SQLite (a file, the default) and PostgreSQL (psycopg 3) are both supported. The schema is
only ever created by the Alembic migrations in ``migrations/``, at start-up, so a database
made by an older version is brought up to date before the service uses it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "migrate", "open_engine"]

_log = logging.getLogger("orchard.evaluation.db")
MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _json_loads(value: Any) -> Any:
    # SQLite gives a JSON column numeric affinity: a stored "1" comes back as the number 1.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def open_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created, and SQLite is tuned for a
    service: WAL (readers never wait for the writer), a busy timeout, foreign keys on."""
    parsed = make_url(url)
    options: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": _json_loads}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **options)

        @event.listens_for(engine, "connect")
        def _tune(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **options)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` with the package's Alembic migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


class Database:
    """The engine and a session factory; ``session()`` is a unit of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, run_migrations: bool = True) -> Database:
        """Open ``url`` and, by default, migrate it to the latest schema."""
        engine = open_engine(url)
        if run_migrations:
            migrate(engine)
        return cls(engine)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def session(self) -> Session:
        """A new session (use as a context manager; commit explicitly)."""
        return self._sessions()

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
