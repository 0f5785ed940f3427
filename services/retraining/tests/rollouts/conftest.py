"""A rollout driver: feeds events to ``advance`` at a test-controlled clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from orchard_retraining.rollouts import (
    AskEvaluation,
    RolloutEvent,
    RolloutSpec,
    RolloutState,
    SetRoutes,
    Tick,
    Transition,
    Verdict,
    advance,
)

T0 = 1_700_000_000.0


def compare_payload(verdict: str, samples: int, failing: tuple[str, ...] = ()) -> dict[str, Any]:
    """An answer shaped like evaluation's ``GET /v1/compare``."""
    signals = [{"metric": "error_rate", "verdict": verdict if verdict != "FAIL" else "PASS"}]
    signals += [{"metric": name, "verdict": "FAIL"} for name in failing]
    return {
        "verdict": verdict,
        "signals": signals,
        "sample_sizes": {"baseline": samples * 10, "candidate": samples},
    }


@dataclass
class Driver:
    """One rollout under test: its spec, state, clock, and every transition so far."""

    spec: RolloutSpec
    state: RolloutState = field(default_factory=RolloutState)
    now: float = T0
    transitions: list[Transition] = field(default_factory=list)

    def send(self, event: RolloutEvent, *, after: float = 0.0) -> Transition:
        self.now += after
        transition = advance(self.spec, self.state, event, self.now)
        self.state = transition.state
        self.transitions.append(transition)
        return transition

    def tick(self, after: float = 0.0) -> Transition:
        return self.send(Tick(), after=after)

    def verdict(
        self, verdict: str, samples: int = 500, *, after: float = 0.0, failing: tuple[str, ...] = ()
    ) -> Transition:
        payload = compare_payload(verdict, samples, failing)
        return self.send(
            Verdict.from_compare(payload, since=self.state.phase_started_at), after=after
        )

    def judge(self, verdict: str, samples: int = 500) -> Transition:
        """Wait out the interval, let a Tick ask evaluation, then answer."""
        asked = self.tick(after=self.spec.step_interval_s)
        assert any(isinstance(a, AskEvaluation) for a in asked.actions), asked
        return self.verdict(verdict, samples)

    @staticmethod
    def routes(transition: Transition) -> SetRoutes:
        """The one ``SetRoutes`` among the transition's actions."""
        found = [a for a in transition.actions if isinstance(a, SetRoutes)]
        assert len(found) == 1, transition.actions
        return found[0]

    @staticmethod
    def asks(transition: Transition) -> list[AskEvaluation]:
        return [a for a in transition.actions if isinstance(a, AskEvaluation)]

    @property
    def weights(self) -> dict[str, float]:
        return {
            self.spec.champion_version: self.state.champion_weight,
            self.spec.candidate_version: self.state.candidate_weight,
        }


MakeDriver = Callable[..., Driver]


@pytest.fixture
def make_driver() -> MakeDriver:
    def make(**settings: Any) -> Driver:
        values: dict[str, Any] = {
            "model": "credit-risk",
            "champion_version": "3",
            "candidate_version": "4",
            "steps": (5, 25, 50, 100),
            "step_interval_s": 60,
            "min_samples": 100,
            "max_wait_s": 600,
        }
        values.update(settings)
        return Driver(RolloutSpec(**values))

    return make
