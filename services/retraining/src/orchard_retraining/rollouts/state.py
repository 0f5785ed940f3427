"""Where a rollout stands, and the audit trail of how it got there; stored as JSON."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["ACTIVE", "TERMINAL", "Decision", "RolloutState", "RolloutStatus"]

SCHEMA: Final = 1


class RolloutStatus(enum.StrEnum):
    """The rollout's phase."""

    PENDING = "pending"
    SHADOWING = "shadowing"
    CANARY = "canary"
    EXPERIMENT = "experiment"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


TERMINAL: Final = frozenset(
    {RolloutStatus.PROMOTED, RolloutStatus.ROLLED_BACK, RolloutStatus.ABORTED}
)
# Phases that judge the candidate (``PAUSED`` remembers which one it interrupted).
ACTIVE: Final = frozenset({RolloutStatus.SHADOWING, RolloutStatus.CANARY, RolloutStatus.EXPERIMENT})


@dataclass(frozen=True, slots=True)
class Decision:
    """One entry of the audit trail: what was decided, when, why, on which statistics.

    ``action`` is one of start, advance, promote, rollback, abort, wait, hold, pause, resume.
    ``verdict`` is evaluation's answer that drove it (``None`` for a person's or the clock's
    decision); ``samples`` the candidate's sample size in it.
    """

    at: float
    from_status: RolloutStatus
    to_status: RolloutStatus
    action: str
    reason: str
    from_step: int | None = None
    to_step: int | None = None
    verdict: Mapping[str, Any] | None = None
    samples: int | None = None
    actor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "at": self.at,
            "from_status": self.from_status.value,
            "to_status": self.to_status.value,
            "action": self.action,
            "reason": self.reason,
            "from_step": self.from_step,
            "to_step": self.to_step,
            "verdict": None if self.verdict is None else dict(self.verdict),
            "samples": self.samples,
            "actor": self.actor,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Read one entry back.

        Raises:
            ValueError: a missing or malformed field.
        """
        try:
            return cls(
                at=_number(data["at"], "at"),
                from_status=RolloutStatus(data["from_status"]),
                to_status=RolloutStatus(data["to_status"]),
                action=str(data["action"]),
                reason=str(data["reason"]),
                from_step=_optional_int(data.get("from_step"), "from_step"),
                to_step=_optional_int(data.get("to_step"), "to_step"),
                verdict=_optional_mapping(data.get("verdict"), "verdict"),
                samples=_optional_int(data.get("samples"), "samples"),
                actor=None if data.get("actor") is None else str(data["actor"]),
            )
        except KeyError as exc:
            raise ValueError(f"decision is missing {exc.args[0]!r}") from None


@dataclass(frozen=True, slots=True)
class RolloutState:
    """A rollout's persisted state; ``RolloutState()`` is a rollout not yet started.

    ``step`` indexes the spec's canary steps (``None`` outside the canary phase).
    ``phase_started_at`` starts the current step's (or shadow's, or experiment's) judgment
    window; ``paused_s`` is the time the current phase spent paused, which does not count
    against its wait. ``resume_status`` is the phase a pause interrupted. ``timed_out_at`` is
    set when an INCONCLUSIVE phase timed out and ``on_timeout: hold`` kept it going.
    """

    status: RolloutStatus = RolloutStatus.PENDING
    step: int | None = None
    candidate_weight: float = 0.0
    mirror_percent: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    phase_started_at: float | None = None
    last_asked_at: float | None = None
    last_judged_at: float | None = None
    paused_since: float | None = None
    pause_reason: str | None = None
    resume_status: RolloutStatus | None = None
    paused_s: float = 0.0
    timed_out_at: float | None = None
    decisions: tuple[Decision, ...] = ()

    @property
    def champion_weight(self) -> float:
        """The champion's share of traffic, in percent."""
        return 100.0 - self.candidate_weight

    @property
    def terminal(self) -> bool:
        """Whether the rollout is over (promoted, rolled back or aborted)."""
        return self.status in TERMINAL

    def paused_for(self, now: float) -> float:
        """How long the rollout has been paused at ``now`` (0 when it is not)."""
        if self.status is not RolloutStatus.PAUSED or self.paused_since is None:
            return 0.0
        return max(0.0, now - self.paused_since)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (``from_dict`` reads it back)."""
        return {
            "schema": SCHEMA,
            "status": self.status.value,
            "step": self.step,
            "candidate_weight": self.candidate_weight,
            "mirror_percent": self.mirror_percent,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "phase_started_at": self.phase_started_at,
            "last_asked_at": self.last_asked_at,
            "last_judged_at": self.last_judged_at,
            "paused_since": self.paused_since,
            "pause_reason": self.pause_reason,
            "resume_status": None if self.resume_status is None else self.resume_status.value,
            "paused_s": self.paused_s,
            "timed_out_at": self.timed_out_at,
            "decisions": [d.to_dict() for d in self.decisions],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutState:
        """Read a stored state back.

        Raises:
            ValueError: another schema version, or a missing or malformed field.
        """
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unsupported rollout state schema {data.get('schema')!r}")
        try:
            decisions = data["decisions"]
            if not isinstance(decisions, list):
                raise ValueError("decisions must be a list")
            resume = data["resume_status"]
            return cls(
                status=RolloutStatus(data["status"]),
                step=_optional_int(data["step"], "step"),
                candidate_weight=_number(data["candidate_weight"], "candidate_weight"),
                mirror_percent=_number(data["mirror_percent"], "mirror_percent"),
                started_at=_optional_time(data["started_at"], "started_at"),
                finished_at=_optional_time(data["finished_at"], "finished_at"),
                phase_started_at=_optional_time(data["phase_started_at"], "phase_started_at"),
                last_asked_at=_optional_time(data["last_asked_at"], "last_asked_at"),
                last_judged_at=_optional_time(data["last_judged_at"], "last_judged_at"),
                paused_since=_optional_time(data["paused_since"], "paused_since"),
                pause_reason=None if data["pause_reason"] is None else str(data["pause_reason"]),
                resume_status=None if resume is None else RolloutStatus(resume),
                paused_s=_number(data["paused_s"], "paused_s"),
                timed_out_at=_optional_time(data["timed_out_at"], "timed_out_at"),
                decisions=tuple(Decision.from_dict(d) for d in decisions),
            )
        except KeyError as exc:
            raise ValueError(f"rollout state is missing {exc.args[0]!r}") from None


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return float(value)


def _optional_time(value: object, name: str) -> float | None:
    return None if value is None else _number(value, name)


def _optional_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    return value


def _optional_mapping(value: object, name: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be an object, not {value!r}")
    return dict(value)
