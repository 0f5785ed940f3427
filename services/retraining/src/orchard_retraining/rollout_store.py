"""Rollouts kept in the database: each event is applied to the stored state in one
transaction (the row locked on PostgreSQL), so concurrent calls and restarts never lose or
double a step. At most one unfinished rollout per model.

What a transition leaves to do outside the database goes into the rollout's
``pending_actions`` in the same transaction: registry aliases (``set_alias``,
``remove_alias``) and, when the rollout ends, retiring the losing version (``retire``, with
``decided_at``). The controller carries them out and removes the done ones, so a crash or an
MLflow outage between the decision and the call loses none. A finished rollout also moves the
model's ``ChampionRecord`` (the candidate when promoted, else the spec's champion) in that
transaction: the route table never shows a finished rollout with the old champion.
"""

from __future__ import annotations

import time
from typing import Any, Final

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from orchard_core.errors import Conflict, InvalidInput, NotFound
from orchard_retraining.db import Database
from orchard_retraining.rollouts import (
    InvalidEvent,
    RemoveAlias,
    RolloutEvent,
    RolloutSpec,
    RolloutState,
    RolloutStatus,
    SetAlias,
    Start,
    Transition,
    advance,
)
from orchard_retraining.tables import ChampionRecord, RolloutRecord

__all__ = ["FINISHED", "RolloutStore", "rollout_dict"]

FINISHED: Final = ("promoted", "rolled_back", "aborted")


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
            running = _running(session, spec.model)
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
                pending_actions=_pending(spec, transition, at),
            )
            session.add(record)
            if session.get(ChampionRecord, spec.model) is None:
                # The version a rollout is judged against is the one serving now.
                session.add(
                    ChampionRecord(model=spec.model, version=spec.champion_version, updated_at=at)
                )
            session.flush()
            return record, transition

    def running(self, model: str) -> int | None:
        """The id of ``model``'s unfinished rollout, if it has one."""
        with self._db.session() as session:
            return _running(session, model)

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
            before = RolloutState.from_dict(record.state)
            try:
                transition = advance(spec, before, event, at)
            except InvalidEvent as exc:
                raise Conflict(str(exc)) from None
            if transition.state == before and not transition.actions:
                return record, transition  # nothing happened (most ticks): nothing to write
            record.state = transition.state.to_dict()
            record.status = transition.state.status.value
            record.updated_at = at
            pending = _pending(spec, transition, at)
            if pending:
                record.pending_actions = [*record.pending_actions, *pending]
            if transition.state.terminal and not before.terminal:
                won = transition.state.status is RolloutStatus.PROMOTED
                version = spec.candidate_version if won else spec.champion_version
                champion = session.get(ChampionRecord, spec.model)
                if champion is None:
                    session.add(ChampionRecord(model=spec.model, version=version, updated_at=at))
                else:
                    champion.version, champion.updated_at = version, at
            return record, transition

    def unfinished(self) -> list[RolloutRecord]:
        """Every unfinished rollout, oldest first."""
        with self._db.session() as session:
            query = select(RolloutRecord).where(RolloutRecord.status.not_in(FINISHED))
            return list(session.scalars(query.order_by(RolloutRecord.id)))

    def with_pending(self, model: str | None = None) -> list[RolloutRecord]:
        """Rollouts with actions still to carry out, oldest first (their order matters)."""
        with self._db.session() as session:
            query = select(RolloutRecord).where(cast(RolloutRecord.pending_actions, String) != "[]")
            if model is not None:
                query = query.where(RolloutRecord.model == model)
            return list(session.scalars(query.order_by(RolloutRecord.id)))

    def drop_pending(self, rollout_id: int, done: list[dict[str, Any]]) -> None:
        """Remove the carried-out ``done`` actions (each once) from the rollout's pending ones."""
        if not done:
            return
        with self._db.session() as session, session.begin():
            record = session.get(
                RolloutRecord, rollout_id, with_for_update=self._db.dialect == "postgresql"
            )
            if record is None:
                return
            left = list(record.pending_actions)
            for action in done:
                if action in left:
                    left.remove(action)
            record.pending_actions = left

    def champions(self) -> dict[str, str]:
        """Every model's known champion version."""
        with self._db.session() as session:
            return {c.model: c.version for c in session.scalars(select(ChampionRecord))}

    def refresh_champion(self, model: str, version: str, now: float | None = None) -> bool:
        """Record the registry's champion of ``model``, unless a rollout of it is unfinished
        or has alias changes still pending (then this database is ahead of the registry).

        Returns:
            Whether the recorded champion changed.
        """
        at = time.time() if now is None else now
        with self._db.session() as session, session.begin():
            if _running(session, model) is not None:
                return False
            busy = session.scalars(
                select(RolloutRecord.id).where(
                    RolloutRecord.model == model,
                    cast(RolloutRecord.pending_actions, String) != "[]",
                )
            ).first()
            if busy is not None:
                return False
            champion = session.get(ChampionRecord, model)
            if champion is None:
                session.add(ChampionRecord(model=model, version=version, updated_at=at))
                return True
            if champion.version == version:
                return False
            champion.version, champion.updated_at = version, at
            return True

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


def _running(session: Session, model: str) -> int | None:
    return session.scalars(
        select(RolloutRecord.id).where(
            RolloutRecord.model == model, RolloutRecord.status.not_in(FINISHED)
        )
    ).first()


def _pending(spec: RolloutSpec, transition: Transition, at: float) -> list[dict[str, Any]]:
    """What the transition leaves to carry out outside the database, as stored data."""
    pending = [a.to_dict() for a in transition.actions if isinstance(a, SetAlias | RemoveAlias)]
    if transition.state.terminal:
        won = transition.state.status is RolloutStatus.PROMOTED
        loser = spec.champion_version if won else spec.candidate_version
        pending.append({"type": "retire", "model": spec.model, "version": loser, "decided_at": at})
    return pending


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
        "pending_actions": record.pending_actions,
    }
    if transition is not None:
        body["actions"] = [action.to_dict() for action in transition.actions]
    return body
