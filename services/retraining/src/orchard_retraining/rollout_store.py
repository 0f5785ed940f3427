"""Rollouts kept in the database: each event is applied to the stored state in one
transaction (the row locked on PostgreSQL), so concurrent calls and restarts never lose or
double a step. At most one unfinished rollout per model."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from orchard_core.errors import Conflict, InvalidInput, NotFound
from orchard_retraining.db import Database
from orchard_retraining.rollouts import (
    InvalidEvent,
    RolloutEvent,
    RolloutSpec,
    RolloutState,
    Start,
    Transition,
    advance,
)
from orchard_retraining.tables import RolloutRecord

__all__ = ["RolloutStore", "rollout_dict"]


class RolloutStore:
    """Starts rollouts and applies events to them."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def start(
        self, spec_data: dict[str, Any], actor: str | None = None, now: float | None = None
    ) -> tuple[RolloutRecord, Transition]:
        """Check the spec and start its rollout.

        Raises:
            InvalidInput: the spec is malformed.
            Conflict: the model already has an unfinished rollout.
        """
        try:
            spec = RolloutSpec.from_dict(spec_data)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a valid rollout: {exc}") from None
        at = time.time() if now is None else now
        transition = advance(spec, RolloutState(), Start(actor=actor), at)
        with self._db.session() as session, session.begin():
            running = session.scalars(
                select(RolloutRecord.id).where(
                    RolloutRecord.model == spec.model,
                    RolloutRecord.status.not_in(("promoted", "rolled_back", "aborted")),
                )
            ).first()
            if running is not None:
                raise Conflict(
                    f"{spec.model} already has rollout {running} in progress: "
                    "promote or abort it first"
                )
            record = RolloutRecord(
                model=spec.model,
                candidate_version=spec.candidate_version,
                status=transition.state.status.value,
                spec=spec.to_dict(),
                state=transition.state.to_dict(),
                created_at=at,
                updated_at=at,
            )
            session.add(record)
            session.flush()
            return record, transition

    def apply(
        self, rollout_id: int, event: RolloutEvent, now: float | None = None
    ) -> tuple[RolloutRecord, Transition]:
        """Apply ``event`` to a rollout's stored state and store the result.

        Raises:
            NotFound: no such rollout.
            Conflict: the event does not apply now (e.g. promoting a finished rollout).
        """
        at = time.time() if now is None else now
        with self._db.session() as session, session.begin():
            record = session.get(
                RolloutRecord, rollout_id, with_for_update=self._db.dialect == "postgresql"
            )
            if record is None:
                raise NotFound(f"no rollout {rollout_id}")
            spec = RolloutSpec.from_dict(record.spec)
            try:
                transition = advance(spec, RolloutState.from_dict(record.state), event, at)
            except InvalidEvent as exc:
                raise Conflict(str(exc)) from None
            record.state = transition.state.to_dict()
            record.status = transition.state.status.value
            record.updated_at = at
            return record, transition

    def get(self, rollout_id: int) -> RolloutRecord:
        """One rollout.

        Raises:
            NotFound: no such rollout.
        """
        with self._db.session() as session:
            record = session.get(RolloutRecord, rollout_id)
            if record is None:
                raise NotFound(f"no rollout {rollout_id}")
            return record

    def list(self, model: str | None = None, limit: int = 100) -> list[RolloutRecord]:
        """The most recent rollouts, newest first."""
        with self._db.session() as session:
            query = select(RolloutRecord).order_by(RolloutRecord.id.desc()).limit(limit)
            if model is not None:
                query = query.where(RolloutRecord.model == model)
            return list(session.scalars(query))


def rollout_dict(record: RolloutRecord, transition: Transition | None = None) -> dict[str, Any]:
    """A rollout as the API shows it; with the actions its last event asked for."""
    body: dict[str, Any] = {
        "id": record.id,
        "model": record.model,
        "candidate_version": record.candidate_version,
        "status": record.status,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "spec": record.spec,
        "state": record.state,
    }
    if transition is not None:
        body["actions"] = [action.to_dict() for action in transition.actions]
    return body
