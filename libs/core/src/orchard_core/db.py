"""A service's own database: engine, Alembic migrations and sessions (``orchard-core[db]``).

SQLite (a file, the default for local use) and PostgreSQL (psycopg 3, in a cluster) are both
supported. A service's schema is only ever made by its Alembic migrations, applied at
start-up, so a database made by an older version is brought up to date before it is used.
Each service passes the folder of its own migrations; nothing here knows their tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "NAMING_CONVENTION",
    "Database",
    "IdType",
    "migrate",
    "open_engine",
    "run_migrations_here",
]

#: Constraint names every service's metadata uses, so migrations can name them everywhere.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}
#: An autoincrementing id: SQLite only autoincrements INTEGER PRIMARY KEY; elsewhere 64-bit.
IdType = BigInteger().with_variant(Integer(), "sqlite")


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


def migrate(engine: Engine, migrations: Path, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` with the Alembic migrations in ``migrations``
    (whose ``env.py`` runs on ``config.attributes["connection"]``)."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def run_migrations_here(metadata: MetaData) -> None:
    """The body of a service's Alembic ``env.py``: run on the connection :func:`migrate`
    hands over (SQLite in batch mode, types compared)."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run these migrations through orchard_core.db.migrate")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


class Database:
    """The engine and a session factory; ``session()`` is a unit of work. A service's
    subclass sets ``migrations``, the folder of its Alembic migrations."""

    migrations: Path | None = None

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, run_migrations: bool = True) -> Self:
        """Open ``url`` and, by default, migrate it to the latest schema."""
        engine = open_engine(url)
        if run_migrations:
            if cls.migrations is None:
                raise TypeError(f"{cls.__name__} names no migrations folder")
            migrate(engine, cls.migrations)
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
