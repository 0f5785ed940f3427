"""What the controller must do after a transition, as data: routes, aliases, questions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "AskEvaluation",
    "MirrorRoute",
    "RemoveAlias",
    "RolloutAction",
    "SetAlias",
    "SetRoutes",
]


@dataclass(frozen=True, slots=True)
class MirrorRoute:
    """``version`` gets a copy of ``percent`` % of the model's traffic (answers discarded)."""

    version: str
    percent: float


@dataclass(frozen=True, slots=True)
class SetRoutes:
    """Replace the model's entry in the route table.

    ``weights`` names both versions and sums to 100 (a version at 0 gets no traffic; it is
    listed so the split is explicit). ``roles`` gives the route-table role (``champion``,
    ``canary`` or ``arm``) of each version with a positive weight; the table's writer leaves
    zero-weight versions out.
    """

    model: str
    weights: Mapping[str, float]
    roles: Mapping[str, str]
    mirrors: tuple[MirrorRoute, ...] = ()
    experiment: str | None = None
    sticky_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "type": "set_routes",
            "model": self.model,
            "weights": dict(self.weights),
            "roles": dict(self.roles),
            "mirrors": [{"version": m.version, "percent": m.percent} for m in self.mirrors],
            "experiment": self.experiment,
            "sticky_key": self.sticky_key,
        }


@dataclass(frozen=True, slots=True)
class SetAlias:
    """Point the registry alias ``name`` of ``model`` at ``version`` (MLflow)."""

    model: str
    name: str
    version: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "type": "set_alias",
            "model": self.model,
            "name": self.name,
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class RemoveAlias:
    """Delete the registry alias ``name`` of ``model``; already absent is fine."""

    model: str
    name: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"type": "remove_alias", "model": self.model, "name": self.name}


@dataclass(frozen=True, slots=True)
class AskEvaluation:
    """Ask evaluation for a judgment and feed the answer back as ``Verdict`` (with ``since``).

    ``kind="compare"``: ``GET /v1/compare?model&baseline&candidate&since&min_samples``, plus
    ``candidate_weight`` (a fraction, absent when no traffic split applies) and
    ``candidate_shadow`` for the shadow phase. ``kind="experiment"``: the A/B analysis of
    ``experiment`` since ``since``. ``compare`` carries the spec's extra judgment settings
    (margins, ``alpha``, ``latency_threshold_ms``) as query parameters. A failure to get an
    answer is ``EvaluationUnreachable``.
    """

    kind: Literal["compare", "experiment"]
    model: str
    baseline: str
    candidate: str
    since: float
    min_samples: int
    candidate_weight: float | None = None
    candidate_shadow: bool = False
    experiment: str | None = None
    compare: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "type": "ask_evaluation",
            "kind": self.kind,
            "model": self.model,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "since": self.since,
            "min_samples": self.min_samples,
            "candidate_weight": self.candidate_weight,
            "candidate_shadow": self.candidate_shadow,
            "experiment": self.experiment,
            "compare": dict(self.compare),
        }


RolloutAction: TypeAlias = SetRoutes | SetAlias | RemoveAlias | AskEvaluation
