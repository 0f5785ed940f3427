"""The record of every Evidently HTML report made: the ``reports`` table and its reads.

The HTML itself lives in a file under ``reports_dir``; a row says where, for which model,
version and window it was made, on demand or on schedule, and whether it succeeded. Old files
are not deleted here (their retention is left to whoever runs the service).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import Float, Index, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from orchard_core.db import IdType
from orchard_evaluation.db import Database
from orchard_evaluation.tables import Base

__all__ = ["REFERENCE_NOTE", "ReportRow", "ReportStore", "RowCounts", "Trigger", "report_record"]

Trigger = Literal["on_demand", "scheduled"]
REFERENCE_NOTE: Final = "resampled from the reference profile (marginals only)"
_ERROR_CHARS: Final = 2000


class ReportRow(Base):
    """One Evidently report of a model version over a time window (``ready`` or ``failed``)."""

    __tablename__ = "reports"
    __table_args__ = (Index(None, "model", "version", "created_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    since: Mapped[float | None] = mapped_column(Float)
    until: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    trigger: Mapped[str] = mapped_column(String(16))  # on_demand, scheduled
    status: Mapped[str] = mapped_column(String(16))  # ready, failed
    error: Mapped[str | None] = mapped_column(String(_ERROR_CHARS))
    path: Mapped[str | None] = mapped_column(String(1000))
    n_current_rows: Mapped[int] = mapped_column(Integer, default=0)
    # Rows in the window before the newest were kept (more than n_current_rows: capped).
    n_window_rows: Mapped[int] = mapped_column(Integer, default=0)
    n_reference_rows: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int | None] = mapped_column(Integer)


@dataclass
class RowCounts:
    """Rows a report compared: current (kept), in the window, and resampled reference."""

    current: int = 0
    window: int = 0
    reference: int = 0


def report_record(row: ReportRow) -> dict[str, Any]:
    """What the API answers for a report (the file's location left out)."""
    capped = row.n_window_rows > row.n_current_rows
    return {
        "id": row.id,
        "model": row.model,
        "version": row.version,
        "window": {"since": row.since, "until": row.until},
        "created_at": row.created_at,
        "trigger": row.trigger,
        "status": row.status,
        "error": row.error,
        "reference": REFERENCE_NOTE,
        "n_reference_rows": row.n_reference_rows,
        "current": (
            f"the newest {row.n_current_rows} of the window's {row.n_window_rows} rows"
            if capped
            else f"all {row.n_current_rows} rows of the window"
        ),
        "n_current_rows": row.n_current_rows,
        "n_window_rows": row.n_window_rows,
        "current_capped": capped,
        "size_bytes": row.size_bytes,
        "html": f"/v1/reports/{row.id}/html" if row.status == "ready" else None,
    }


class ReportStore:
    """Adds and reads report records."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(
        self,
        model: str,
        version: str,
        since: float | None,
        until: float | None,
        trigger: Trigger,
        *,
        path: str | None = None,
        error: str | None = None,
        counts: RowCounts | None = None,
        size_bytes: int | None = None,
    ) -> ReportRow:
        """Record a report: ``ready`` with its file, or ``failed`` with its error."""
        row = ReportRow(
            model=model,
            version=version,
            since=since,
            until=until,
            created_at=time.time(),
            trigger=trigger,
            status="failed" if error is not None else "ready",
            error=None if error is None else error[:_ERROR_CHARS],
            path=path,
            n_current_rows=counts.current if counts else 0,
            n_window_rows=counts.window if counts else 0,
            n_reference_rows=counts.reference if counts else 0,
            size_bytes=size_bytes,
        )
        with self._db.session() as session, session.begin():
            session.add(row)
        return row

    def get(self, report_id: int) -> ReportRow | None:
        """The report with this id, or None."""
        with self._db.session() as session:
            return session.get(ReportRow, report_id)

    def list(
        self, model: str | None = None, version: str | None = None, limit: int = 100
    ) -> list[ReportRow]:
        """Reports (of ``model`` and ``version``), newest first."""
        query = select(ReportRow).order_by(ReportRow.created_at.desc(), ReportRow.id.desc())
        if model is not None:
            query = query.where(ReportRow.model == model)
        if version is not None:
            query = query.where(ReportRow.version == version)
        with self._db.session() as session:
            return list(session.scalars(query.limit(limit)))
