"""What happens to a rollout: the events ``advance`` takes.

Commands come from a person or the API (``Start``, ``ManualPromote``, ``ManualAbort``);
observations come from the world (``Tick``: time passed; ``Verdict``: evaluation answered;
``EvaluationUnreachable``: it did not).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias, cast

__all__ = [
    "VERDICTS",
    "EvaluationUnreachable",
    "ManualAbort",
    "ManualPromote",
    "RolloutEvent",
    "Start",
    "Tick",
    "Verdict",
    "VerdictValue",
]

VerdictValue: TypeAlias = Literal["PASS", "FAIL", "INCONCLUSIVE"]
VERDICTS: Final[tuple[VerdictValue, ...]] = ("PASS", "FAIL", "INCONCLUSIVE")


@dataclass(frozen=True, slots=True)
class Start:
    """Begin the rollout: set the first routes and the ``challenger`` alias."""

    actor: str | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: ask evaluation when the phase's interval is over."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Evaluation's judgment of the candidate.

    ``samples`` is the candidate's sample size in the judged window (compared with the spec's
    ``min_samples``); ``payload`` is evaluation's answer, kept in the audit trail. ``since``,
    when given, is the window start the judgment was asked for (``AskEvaluation.since``): a
    verdict for another window (an earlier step's, arriving late) is ignored.

    Raises:
        ValueError: an unknown verdict or a negative sample count.
    """

    verdict: VerdictValue
    payload: Mapping[str, Any] = field(default_factory=dict)
    samples: int = 0
    since: float | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {self.verdict!r}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 0:
            raise ValueError(f"samples must be a non-negative integer, not {self.samples!r}")
        if self.since is not None and not math.isfinite(self.since):
            raise ValueError(f"since must be a finite time, not {self.since!r}")

    @classmethod
    def from_compare(cls, payload: Mapping[str, Any], since: float | None = None) -> Verdict:
        """The verdict in evaluation's ``GET /v1/compare`` answer.

        Raises:
            ValueError: the payload has no valid ``verdict`` or ``sample_sizes.candidate``.
        """
        verdict = payload.get("verdict")
        if verdict not in VERDICTS:
            raise ValueError(f"compare answer has no valid verdict: {verdict!r}")
        sizes = payload.get("sample_sizes")
        samples = sizes.get("candidate") if isinstance(sizes, Mapping) else None
        if isinstance(samples, bool) or not isinstance(samples, int):
            raise ValueError(f"compare answer has no candidate sample size: {sizes!r}")
        return cls(cast(VerdictValue, verdict), dict(payload), samples, since)


@dataclass(frozen=True, slots=True)
class EvaluationUnreachable:
    """Asking evaluation failed (connection refused, timeout, 5xx): the rollout pauses."""

    error: str


@dataclass(frozen=True, slots=True)
class ManualPromote:
    """A person promotes the candidate now, whatever the phase."""

    actor: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ManualAbort:
    """A person stops the rollout now: candidate weight 0, aliases restored."""

    actor: str | None = None
    reason: str = ""


RolloutEvent: TypeAlias = (
    Start | Tick | Verdict | EvaluationUnreachable | ManualPromote | ManualAbort
)
