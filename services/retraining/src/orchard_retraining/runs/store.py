"""Pipeline runs kept in the database: what was asked for, where it runs, what it made."""

from __future__ import annotations

import builtins
import time
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import func, select

from orchard_core.errors import InvalidInput, NotFound
from orchard_retraining.db import Database
from orchard_retraining.tables import PipelineRunRecord

__all__ = [
    "CLEANUP_PENDING",
    "FINISHED",
    "STATUSES",
    "PipelineRunStore",
    "check_options",
    "run_dict",
]

STATUSES: Final = ("pending", "running", "succeeded", "failed", "cancelled")
FINISHED: Final = frozenset({"succeeded", "failed", "cancelled"})
# The training step's options a caller may set; anything else is refused (400).
STEP_OPTIONS: Final = ("seed", "n_rows", "defect")
# Kept in the same JSON column as the step's options, shown as fields of their own.
_META: Final = ("auto_rollout", "actor", "reason")
MIN_ROWS: Final = 50
# The stage of a failed or cancelled run whose registered versions MLflow could not delete yet.
CLEANUP_PENDING: Final = "cleanup pending"


def check_options(options: Any) -> dict[str, Any]:
    """The training step's options, checked.

    Raises:
        InvalidInput: not an object, an unknown option, or a value of the wrong kind.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise InvalidInput("'options' must be an object")
    unknown = set(options) - set(STEP_OPTIONS)
    if unknown:
        known = ", ".join(STEP_OPTIONS)
        raise InvalidInput(f"unknown option(s): {', '.join(sorted(unknown))} (known: {known})")
    checked: dict[str, Any] = {}
    seed = options.get("seed")
    if seed is not None:
        if not _is_int(seed) or seed < 0:
            raise InvalidInput("option 'seed' must be a non-negative integer")
        checked["seed"] = seed
    rows = options.get("n_rows")
    if rows is not None:
        if not _is_int(rows) or rows < MIN_ROWS:
            raise InvalidInput(f"option 'n_rows' must be an integer of at least {MIN_ROWS}")
        checked["n_rows"] = rows
    defect = options.get("defect")
    if defect is not None:
        if defect != "errors":
            raise InvalidInput("option 'defect' must be \"errors\"")
        checked["defect"] = defect
    return checked


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class PipelineRunStore:
    """Creates, finds and updates pipeline-run records (blocking)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def create(
        self,
        model: str,
        *,
        backend: str,
        trigger_id: int | None = None,
        options: Mapping[str, Any] | None = None,
        auto_rollout: bool | None = None,
        actor: str | None = None,
        reason: str | None = None,
        now: float | None = None,
    ) -> PipelineRunRecord:
        """Record a new pending run."""
        meta = {"auto_rollout": auto_rollout, "actor": actor, "reason": reason}
        record = PipelineRunRecord(
            model=model,
            trigger_id=trigger_id,
            status="pending",
            options={**check_options(options), **{k: v for k, v in meta.items() if v is not None}},
            backend=backend,
            progress=0.0,
            created_at=time.time() if now is None else now,
        )
        with self._db.session() as session, session.begin():
            session.add(record)
        return record

    def get(self, run_id: int) -> PipelineRunRecord:
        """One run.

        Raises:
            NotFound: no such run.
        """
        with self._db.session() as session:
            record = session.get(PipelineRunRecord, run_id)
            if record is None:
                raise NotFound(f"no pipeline run {run_id}")
            return record

    def list(
        self, model: str | None = None, status: str | None = None, limit: int = 100
    ) -> builtins.list[PipelineRunRecord]:
        """Runs, newest first."""
        query = select(PipelineRunRecord).order_by(PipelineRunRecord.id.desc()).limit(limit)
        if model is not None:
            query = query.where(PipelineRunRecord.model == model)
        if status is not None:
            query = query.where(PipelineRunRecord.status == status)
        with self._db.session() as session:
            return builtins.list(session.scalars(query))

    def with_status(
        self, status: str, limit: int | None = None
    ) -> builtins.list[PipelineRunRecord]:
        """Runs in ``status``, oldest first."""
        query = select(PipelineRunRecord).where(PipelineRunRecord.status == status)
        with self._db.session() as session:
            return builtins.list(session.scalars(query.order_by(PipelineRunRecord.id).limit(limit)))

    def awaiting_gate(self) -> builtins.list[PipelineRunRecord]:
        """Succeeded runs whose candidate the gate has not judged yet (oldest first)."""
        query = select(PipelineRunRecord).where(
            PipelineRunRecord.status == "succeeded",
            PipelineRunRecord.gate_verdict.is_(None),
            PipelineRunRecord.candidate_version.is_not(None),
        )
        with self._db.session() as session:
            return builtins.list(session.scalars(query.order_by(PipelineRunRecord.id)))

    def awaiting_cleanup(self) -> builtins.list[PipelineRunRecord]:
        """Failed or cancelled runs whose versions MLflow could not delete yet."""
        query = select(PipelineRunRecord).where(
            PipelineRunRecord.status.in_(("failed", "cancelled")),
            PipelineRunRecord.stage == CLEANUP_PENDING,
        )
        with self._db.session() as session:
            return builtins.list(session.scalars(query.order_by(PipelineRunRecord.id)))

    def active_by_model(self) -> dict[str, int]:
        """How many runs each model has pending or running."""
        query = (
            select(PipelineRunRecord.model, func.count())
            .where(PipelineRunRecord.status.in_(("pending", "running")))
            .group_by(PipelineRunRecord.model)
        )
        with self._db.session() as session:
            return {model: int(count) for model, count in session.execute(query)}

    def update(
        self, run_id: int, *, only_if: tuple[str, ...] | None = None, **changes: Any
    ) -> PipelineRunRecord | None:
        """Apply ``changes`` to a run; with ``only_if``, only while its status is one of
        those (``None`` returned otherwise: someone else finished it first)."""
        with self._db.session() as session, session.begin():
            record = session.get(
                PipelineRunRecord, run_id, with_for_update=self._db.dialect == "postgresql"
            )
            if record is None:
                raise NotFound(f"no pipeline run {run_id}")
            if only_if is not None and record.status not in only_if:
                return None
            for name, value in changes.items():
                setattr(record, name, value)
            return record


def run_meta(record: PipelineRunRecord) -> dict[str, Any]:
    """What the run was asked for beyond the step's options (auto_rollout, actor, reason)."""
    return {name: record.options.get(name) for name in _META}


def run_dict(record: PipelineRunRecord) -> dict[str, Any]:
    """A run as the API shows it."""
    duration = None
    if record.started_at is not None and record.finished_at is not None:
        duration = round(record.finished_at - record.started_at, 3)
    return {
        "id": record.id,
        "model": record.model,
        "trigger_id": record.trigger_id,
        "status": record.status,
        "progress": record.progress,
        "stage": record.stage,
        "error": record.error,
        "options": {k: v for k, v in record.options.items() if k in STEP_OPTIONS},
        **run_meta(record),
        "backend": record.backend,
        "candidate_version": record.candidate_version,
        "mlflow_run_id": record.mlflow_run_id,
        "result": record.result,
        "gate_verdict": record.gate_verdict,
        "gate": record.gate,
        "rollout_id": record.rollout_id,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration_s": duration,
    }
