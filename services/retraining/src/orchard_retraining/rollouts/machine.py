"""The rollout state machine: one pure function from (spec, state, event, now) to what next.

::

    pending ─Start─┬─► canary[0] ─PASS─► canary[1] ─PASS─► … ─PASS─► promoted  (canary)
                   ├─► shadowing ─PASS─► canary[0] ─PASS─► … ─PASS─► promoted  (shadow_first)
                   └─► experiment ─PASS─► promoted                             (ab)
                                   (a 100 % canary step is the promotion itself)

    in shadowing / canary / experiment:
      FAIL, at any time and on any sample size ─► rolled_back
      INCONCLUSIVE, or a PASS on < min_samples or before the phase's interval ─► wait;
        once the wait is over, on_timeout: rollback ─► rolled_back
                                           promote  ─► as after a PASS (next step)
                                           hold     ─► stay, timed_out_at set, keep judging
      EvaluationUnreachable ─► paused: weights frozen, Ticks only re-ask; the next Verdict
        resumes the interrupted phase (paused time does not count against its wait) and is
        judged there
    any state but the terminal ones: ManualPromote ─► promoted, ManualAbort ─► aborted
    promoted / rolled_back / aborted: terminal

Nothing here reads a clock, does I/O or draws a random number: the same events at the same
``now`` give the same result, also after ``RolloutState.from_dict(state.to_dict())``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from orchard_retraining.rollouts.actions import (
    AskEvaluation,
    MirrorRoute,
    RemoveAlias,
    RolloutAction,
    SetAlias,
    SetRoutes,
)
from orchard_retraining.rollouts.events import (
    EvaluationUnreachable,
    ManualAbort,
    ManualPromote,
    RolloutEvent,
    Start,
    Tick,
    Verdict,
)
from orchard_retraining.rollouts.spec import ExperimentStop, OnTimeout, RolloutSpec, Strategy
from orchard_retraining.rollouts.state import (
    ACTIVE,
    TERMINAL,
    Decision,
    RolloutState,
    RolloutStatus,
)

__all__ = ["InvalidEvent", "Transition", "advance"]

_S = RolloutStatus
# A window start that went through a database may come back rounded (microseconds, or
# milliseconds); phases start far more than this apart.
_SAME_S = 1e-3


class InvalidEvent(ValueError):
    """The event cannot apply in the rollout's state (e.g. promote after a rollback)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """The new state, what the controller must do now (in order), and what was decided."""

    state: RolloutState
    actions: tuple[RolloutAction, ...] = ()
    decisions: tuple[Decision, ...] = ()

    @property
    def decision(self) -> Decision | None:
        """The last decision taken (``None`` when nothing was decided)."""
        return self.decisions[-1] if self.decisions else None


def advance(spec: RolloutSpec, state: RolloutState, event: RolloutEvent, now: float) -> Transition:
    """Apply ``event`` at time ``now`` (Unix seconds) to a rollout.

    Observations (``Tick``, ``Verdict``, ``EvaluationUnreachable``) that arrive after the
    rollout ended change nothing: a late answer from evaluation is a normal race. Commands
    (``Start``, ``ManualPromote``, ``ManualAbort``) that cannot apply raise.

    Raises:
        InvalidEvent: a command in a state that cannot take it, or a verdict or evaluation
            failure before the rollout started.
        ValueError: ``now`` is not a finite number, or ``state`` does not fit ``spec``.
    """
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise ValueError(f"now must be a finite time in seconds, not {now!r}")
    _check_fits(spec, state)
    if state.status in TERMINAL:
        if isinstance(event, Tick | Verdict | EvaluationUnreachable):
            return Transition(state)
        raise InvalidEvent(
            f"the rollout is already {state.status.value}: {type(event).__name__} cannot change it"
        )
    if isinstance(event, Start):
        if state.status is not _S.PENDING:
            raise InvalidEvent(f"the rollout already started (status {state.status.value})")
        return _start(spec, state, now, event.actor)
    if isinstance(event, ManualPromote):
        return _promote(spec, state, now, _manual("promoted", event.reason), actor=event.actor)
    if isinstance(event, ManualAbort):
        reason = _manual("aborted", event.reason)
        return _back(spec, state, now, _S.ABORTED, "abort", reason, actor=event.actor)
    if state.status is _S.PENDING:
        if isinstance(event, Tick):
            return Transition(state)
        raise InvalidEvent(
            f"the rollout has not started: {type(event).__name__} answers nothing it asked"
        )
    if isinstance(event, Tick):
        return _tick(spec, state, now)
    if isinstance(event, EvaluationUnreachable):
        return _unreachable(state, event, now)
    return _judge(spec, state, event, now)


def _check_fits(spec: RolloutSpec, state: RolloutState) -> None:
    phase = _phase(state)
    allowed = {
        Strategy.CANARY: {_S.CANARY},
        Strategy.SHADOW_FIRST: {_S.SHADOWING, _S.CANARY},
        Strategy.AB: {_S.EXPERIMENT},
    }[spec.strategy]
    if phase is not None and phase not in allowed:
        raise ValueError(f"a {spec.strategy.value} rollout cannot be in phase {phase.value}")
    if phase is _S.CANARY and (state.step is None or not 0 <= state.step < len(spec.steps)):
        raise ValueError(f"step {state.step!r} is not one of the spec's {len(spec.steps)} steps")
    if phase is not None and state.phase_started_at is None:
        raise ValueError(f"a rollout in phase {phase.value} needs phase_started_at")
    if state.status is _S.PAUSED and state.paused_since is None:
        raise ValueError("a paused rollout needs paused_since")


def _at(value: float | None) -> float:
    """A time ``_check_fits`` made sure is there."""
    if value is None:  # pragma: no cover - _check_fits rejects such a state first
        raise ValueError("the rollout state lacks a time it needs")
    return value


def _phase(state: RolloutState) -> RolloutStatus | None:
    """The judging phase: the status, or for a paused rollout the phase it interrupted."""
    if state.status in ACTIVE:
        return state.status
    if state.status is _S.PAUSED:
        if state.resume_status not in ACTIVE:
            raise ValueError("a paused rollout must name the phase it resumes (resume_status)")
        return state.resume_status
    return None


def _manual(what: str, reason: str) -> str:
    return f"{what} by hand" + (f": {reason}" if reason else "")


def _record(
    old: RolloutState,
    new: RolloutState,
    now: float,
    action: str,
    reason: str,
    verdict: Verdict | None = None,
    actor: str | None = None,
) -> tuple[RolloutState, Decision]:
    decision = Decision(
        at=float(now),
        from_status=old.status,
        to_status=new.status,
        action=action,
        reason=reason,
        from_step=old.step,
        to_step=new.step,
        verdict=None if verdict is None else dict(verdict.payload),
        samples=None if verdict is None else verdict.samples,
        actor=actor,
    )
    return replace(new, decisions=(*new.decisions, decision)), decision


def _routes(
    spec: RolloutSpec,
    candidate_weight: float,
    *,
    mirror: float = 0.0,
    experiment: bool = False,
    promoted: bool = False,
) -> SetRoutes:
    weights = {
        spec.champion_version: 100.0 - candidate_weight,
        spec.candidate_version: float(candidate_weight),
    }
    if experiment:
        roles = {spec.champion_version: "arm", spec.candidate_version: "arm"}
    elif promoted:
        roles = {spec.candidate_version: "champion"}
    else:
        roles = {spec.champion_version: "champion", spec.candidate_version: "canary"}
    return SetRoutes(
        model=spec.model,
        weights=weights,
        roles={v: r for v, r in roles.items() if weights[v] > 0},
        mirrors=(MirrorRoute(spec.candidate_version, mirror),) if mirror > 0 else (),
        experiment=spec.experiment_id if experiment else None,
        sticky_key=spec.sticky_key,
    )


def _start(spec: RolloutSpec, state: RolloutState, now: float, actor: str | None) -> Transition:
    base = replace(state, started_at=now, phase_started_at=now, paused_s=0.0, last_asked_at=None)
    if spec.strategy is Strategy.SHADOW_FIRST:
        new = replace(base, status=_S.SHADOWING, mirror_percent=spec.shadow_percent)
        routes = _routes(spec, 0.0, mirror=spec.shadow_percent)
        reason = f"shadowing: {spec.shadow_percent:g} % of traffic mirrored to the candidate"
    elif spec.strategy is Strategy.AB:
        new = replace(base, status=_S.EXPERIMENT, candidate_weight=spec.experiment_percent)
        routes = _routes(spec, spec.experiment_percent, experiment=True)
        reason = (
            f"experiment {spec.experiment_id}: {spec.experiment_percent:g} % of units on the "
            f"candidate, {spec.experiment_stop.value} stop"
        )
    else:
        new = replace(base, status=_S.CANARY, step=0, candidate_weight=spec.steps[0])
        routes = _routes(spec, spec.steps[0])
        reason = f"canary at {spec.steps[0]:g} %"
    new, decision = _record(state, new, now, "start", reason, actor=actor)
    alias = SetAlias(spec.model, "challenger", spec.candidate_version)
    return Transition(new, (alias, routes), (decision,))


def _finished(
    state: RolloutState, status: RolloutStatus, now: float, weight: float
) -> RolloutState:
    return replace(
        state,
        status=status,
        step=None,
        candidate_weight=weight,
        mirror_percent=0.0,
        finished_at=now,
        paused_since=None,
        pause_reason=None,
        resume_status=None,
    )


def _promote(
    spec: RolloutSpec,
    state: RolloutState,
    now: float,
    reason: str,
    verdict: Verdict | None = None,
    actor: str | None = None,
) -> Transition:
    new, decision = _record(
        state, _finished(state, _S.PROMOTED, now, 100.0), now, "promote", reason, verdict, actor
    )
    actions: tuple[RolloutAction, ...] = (
        _routes(spec, 100.0, promoted=True),
        SetAlias(spec.model, "champion", spec.candidate_version),
        SetAlias(spec.model, "previous", spec.champion_version),
        RemoveAlias(spec.model, "challenger"),
    )
    return Transition(new, actions, (decision,))


def _back(
    spec: RolloutSpec,
    state: RolloutState,
    now: float,
    status: RolloutStatus,
    action: str,
    reason: str,
    verdict: Verdict | None = None,
    actor: str | None = None,
) -> Transition:
    new, decision = _record(
        state, _finished(state, status, now, 0.0), now, action, reason, verdict, actor
    )
    actions: tuple[RolloutAction, ...] = (
        _routes(spec, 0.0),
        SetAlias(spec.model, "champion", spec.champion_version),
        RemoveAlias(spec.model, "challenger"),
    )
    return Transition(new, actions, (decision,))


def _first_judgment_after(spec: RolloutSpec, phase: RolloutStatus) -> float:
    if phase is _S.SHADOWING:
        return spec.shadow_duration_s
    if phase is _S.EXPERIMENT and spec.experiment_stop is ExperimentStop.FIXED:
        return spec.experiment_duration_s
    return spec.step_interval_s


def _tick(spec: RolloutSpec, state: RolloutState, now: float) -> Transition:
    phase = _phase(state)
    if phase is None:  # pragma: no cover - advance() sends only started rollouts here
        return Transition(state)
    if now - _at(state.phase_started_at) < _first_judgment_after(spec, phase):
        return Transition(state)
    if state.last_asked_at is not None and now - state.last_asked_at < spec.step_interval_s:
        return Transition(state)
    return Transition(replace(state, last_asked_at=now), (_ask(spec, state, phase),))


def _ask(spec: RolloutSpec, state: RolloutState, phase: RolloutStatus) -> AskEvaluation:
    common: dict[str, Any] = {
        "model": spec.model,
        "baseline": spec.champion_version,
        "candidate": spec.candidate_version,
        "since": _at(state.phase_started_at),
        "min_samples": spec.min_samples,
        "compare": dict(spec.compare),
    }
    if phase is _S.EXPERIMENT:
        return AskEvaluation(
            "experiment",
            candidate_weight=spec.experiment_percent / 100,
            experiment=spec.experiment_id,
            **common,
        )
    if phase is _S.SHADOWING:
        return AskEvaluation("compare", candidate_shadow=True, **common)
    return AskEvaluation("compare", candidate_weight=state.candidate_weight / 100, **common)


def _unreachable(state: RolloutState, event: EvaluationUnreachable, now: float) -> Transition:
    reason = f"evaluation unreachable: {event.error}"
    if state.status is _S.PAUSED:
        # Still down: the latest error is shown; the trail keeps only the pause itself.
        return Transition(replace(state, pause_reason=reason))
    paused = replace(
        state, status=_S.PAUSED, resume_status=state.status, paused_since=now, pause_reason=reason
    )
    new, decision = _record(
        state, paused, now, "pause", f"{reason}; weights held, no step taken until it answers"
    )
    return Transition(new, (), (decision,))


def _judge(spec: RolloutSpec, state: RolloutState, verdict: Verdict, now: float) -> Transition:
    if verdict.since is not None and abs(verdict.since - _at(state.phase_started_at)) > _SAME_S:
        return Transition(state)  # asked for another phase's window: stale
    resumed: tuple[Decision, ...] = ()
    if state.status is _S.PAUSED:
        pause = max(0.0, now - _at(state.paused_since))
        back = replace(
            state,
            status=state.resume_status or state.status,  # _check_fits: set
            resume_status=None,
            paused_since=None,
            pause_reason=None,
            paused_s=state.paused_s + pause,
        )
        state, decision = _record(
            state, back, now, "resume", f"evaluation answers again after {pause:g} s paused"
        )
        resumed = (decision,)
    state = replace(state, last_judged_at=now)
    done = _decide(spec, state, verdict, now)
    return Transition(done.state, done.actions, resumed + done.decisions)


def _decide(spec: RolloutSpec, state: RolloutState, verdict: Verdict, now: float) -> Transition:
    phase = state.status
    elapsed = now - _at(state.phase_started_at)
    if verdict.verdict == "FAIL":
        reason = f"evaluation verdict FAIL{_failing(verdict.payload)} on {verdict.samples} samples"
        return _back(spec, state, now, _S.ROLLED_BACK, "rollback", reason, verdict)
    why = _not_yet(spec, phase, verdict, elapsed)
    if why is None:
        return _on_pass(spec, state, now, f"PASS on {verdict.samples} samples", verdict)
    limit = spec.experiment_duration_s if phase is _S.EXPERIMENT else spec.max_wait_s
    waited = elapsed - state.paused_s
    if waited < limit:
        return _stay(state, now, "wait", why, verdict)
    if state.timed_out_at is not None:
        return _stay(state, now, "wait", f"{why}; held since the {limit:g} s wait ran out", verdict)
    why = f"{why}; the {limit:g} s wait ran out after {waited:g} s, on_timeout={spec.on_timeout}"
    if spec.on_timeout is OnTimeout.ROLLBACK:
        return _back(spec, state, now, _S.ROLLED_BACK, "rollback", why, verdict)
    if spec.on_timeout is OnTimeout.PROMOTE:
        return _on_pass(spec, state, now, why, verdict)
    return _stay(replace(state, timed_out_at=now), now, "hold", why, verdict, was=state)


def _not_yet(
    spec: RolloutSpec, phase: RolloutStatus, verdict: Verdict, elapsed: float
) -> str | None:
    """Why a non-FAIL verdict does not move the rollout on yet (``None``: it does)."""
    if verdict.verdict == "INCONCLUSIVE":
        return f"INCONCLUSIVE on {verdict.samples} samples"
    if verdict.samples < spec.min_samples:
        return f"PASS on {verdict.samples} samples, fewer than min_samples {spec.min_samples}"
    if phase is _S.EXPERIMENT and spec.experiment_stop is ExperimentStop.SEQUENTIAL:
        return None
    minimum = _first_judgment_after(spec, phase)
    if elapsed < minimum:
        return f"PASS before the phase's {minimum:g} s were over ({elapsed:g} s)"
    return None


def _stay(
    state: RolloutState,
    now: float,
    action: str,
    reason: str,
    verdict: Verdict,
    was: RolloutState | None = None,
) -> Transition:
    new, decision = _record(was or state, state, now, action, reason, verdict)
    return Transition(new, (), (decision,))


def _on_pass(
    spec: RolloutSpec, state: RolloutState, now: float, reason: str, verdict: Verdict
) -> Transition:
    """Move on as after a PASS: shadow → first canary step, step → next step or promotion."""
    if state.status is _S.EXPERIMENT:
        return _promote(spec, state, now, reason, verdict)
    following = 0 if state.status is _S.SHADOWING else (state.step or 0) + 1
    if following >= len(spec.steps) or spec.steps[following] >= 100:
        return _promote(spec, state, now, reason, verdict)
    weight = spec.steps[following]
    moved = replace(
        state,
        status=_S.CANARY,
        step=following,
        candidate_weight=weight,
        mirror_percent=0.0,
        phase_started_at=now,
        paused_s=0.0,
        last_asked_at=None,
        timed_out_at=None,
    )
    before = "shadow" if state.status is _S.SHADOWING else f"canary {state.candidate_weight:g} %"
    new, decision = _record(
        state, moved, now, "advance", f"{reason}: {before} → canary {weight:g} %", verdict
    )
    return Transition(new, (_routes(spec, weight),), (decision,))


def _failing(payload: Mapping[str, Any]) -> str:
    """`` (error_rate, latency)``: the signals or arms evaluation failed, when it says."""
    names: list[str] = []
    for key in ("signals", "comparisons"):
        entries = payload.get(key)
        if isinstance(entries, list):
            for entry in entries:
                if isinstance(entry, Mapping) and entry.get("verdict") == "FAIL":
                    names.append(str(entry.get("metric") or entry.get("arm") or "?"))
    return f" ({', '.join(names)})" if names else ""
