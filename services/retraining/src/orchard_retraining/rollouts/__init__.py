"""Rollouts as pure logic: a spec, a persisted state, and ``advance`` from one to the next.

The controller owns the clock and the I/O: it feeds ``advance`` events (``Start``, ``Tick``,
evaluation's ``Verdict`` or ``EvaluationUnreachable``, ``ManualPromote``, ``ManualAbort``)
with the current time, stores ``transition.state.to_dict()``, and carries out
``transition.actions`` in order (route table, registry aliases, questions to evaluation).
"""

from orchard_retraining.rollouts.actions import (
    AskEvaluation,
    MirrorRoute,
    RemoveAlias,
    RolloutAction,
    SetAlias,
    SetRoutes,
)
from orchard_retraining.rollouts.events import (
    VERDICTS,
    EvaluationUnreachable,
    ManualAbort,
    ManualPromote,
    RolloutEvent,
    Start,
    Tick,
    Verdict,
    VerdictValue,
)
from orchard_retraining.rollouts.machine import InvalidEvent, Transition, advance
from orchard_retraining.rollouts.spec import (
    DEFAULT_STICKY_KEY,
    ExperimentStop,
    OnTimeout,
    RolloutSpec,
    Strategy,
)
from orchard_retraining.rollouts.state import (
    ACTIVE,
    TERMINAL,
    Decision,
    RolloutState,
    RolloutStatus,
)

__all__ = [
    "ACTIVE",
    "DEFAULT_STICKY_KEY",
    "TERMINAL",
    "VERDICTS",
    "AskEvaluation",
    "Decision",
    "EvaluationUnreachable",
    "ExperimentStop",
    "InvalidEvent",
    "ManualAbort",
    "ManualPromote",
    "MirrorRoute",
    "OnTimeout",
    "RemoveAlias",
    "RolloutAction",
    "RolloutEvent",
    "RolloutSpec",
    "RolloutState",
    "RolloutStatus",
    "SetAlias",
    "SetRoutes",
    "Start",
    "Strategy",
    "Tick",
    "Transition",
    "Verdict",
    "VerdictValue",
    "advance",
]
