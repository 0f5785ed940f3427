"""What a rollout should do: the strategy and its settings, validated once, stored as JSON."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final

__all__ = [
    "COMPARE_SETTINGS",
    "DEFAULT_STICKY_KEY",
    "ExperimentStop",
    "OnTimeout",
    "RolloutSpec",
    "Strategy",
]

# The gateway's default unit header (orchard_gateway.routes_table); services share no code.
DEFAULT_STICKY_KEY: Final = "X-Orchard-Unit"

# Evaluation's ``GET /v1/compare`` settings a rollout may pass on, with the ranges evaluation
# accepts: (low, high, low inclusive, high inclusive); ``None`` is unbounded.
COMPARE_SETTINGS: Final[Mapping[str, tuple[float, float | None, bool, bool]]] = {
    "error_margin": (0.0, 1.0, True, True),
    "latency_margin": (0.0, 1.0, True, True),
    "accuracy_margin": (0.0, 1.0, True, True),
    "alpha": (0.0, 1.0, False, False),
    "latency_threshold_ms": (0.0, None, False, False),
}


class Strategy(enum.StrEnum):
    """How traffic moves to the candidate."""

    CANARY = "canary"
    """Weighted steps (e.g. 5 → 25 → 50 → 100 %), each judged before the next."""
    AB = "ab"
    """A sticky A/B experiment between champion and candidate, then promote or roll back."""
    SHADOW_FIRST = "shadow_first"
    """Mirror a share of traffic to the candidate, judge the shadow, then the canary steps."""


class OnTimeout(enum.StrEnum):
    """What an INCONCLUSIVE judgment does once the phase's wait is over."""

    ROLLBACK = "rollback"
    """Give up: candidate weight 0, aliases restored."""
    PROMOTE = "promote"
    """Treat the timeout as a PASS: move on to the next step (the promotion at the last)."""
    HOLD = "hold"
    """Stay at the current step and keep judging; only a verdict or a person moves it on."""


class ExperimentStop(enum.StrEnum):
    """When an A/B experiment may end."""

    FIXED = "fixed"
    """Judge once, when the duration is over (a FAIL still stops it at once)."""
    SEQUENTIAL = "sequential"
    """Judge every step interval and stop as soon as the verdict is PASS or FAIL."""


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    """One rollout of ``candidate_version`` of ``model`` against ``champion_version``.

    A canary step of 100 % is the promotion itself (it is never judged: with all traffic on
    the candidate there is no concurrent baseline to judge it against), so ``steps`` needs at
    least one step below 100; ``[5, 25, 50, 100]`` and ``[5, 25, 50]`` both promote after a
    PASS at 50 %.

    ``compare`` passes settings on to evaluation's judgment (``error_margin``,
    ``latency_margin``, ``accuracy_margin``, ``alpha``, ``latency_threshold_ms``; ``alpha``
    also applies to A/B experiments); empty, evaluation's defaults apply.

    Times are seconds. ``max_wait_s`` bounds each canary step and the shadow phase (time spent
    paused does not count); an A/B experiment is bounded by ``experiment_duration_s``.

    Raises:
        ValueError: on construction, naming the setting that is wrong.
    """

    model: str
    champion_version: str
    candidate_version: str
    strategy: Strategy = Strategy.CANARY
    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    step_interval_s: float = 300.0
    min_samples: int = 100
    max_wait_s: float = 3_600.0
    on_timeout: OnTimeout = OnTimeout.ROLLBACK
    shadow_percent: float = 100.0
    shadow_duration_s: float = 600.0
    experiment_id: str | None = None
    experiment_duration_s: float = 86_400.0
    experiment_percent: float = 50.0
    experiment_stop: ExperimentStop = ExperimentStop.SEQUENTIAL
    sticky_key: str = DEFAULT_STICKY_KEY
    compare: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Coerce the enums and the steps so that a spec built from JSON values compares equal.
        for name, kind in (
            ("strategy", Strategy),
            ("on_timeout", OnTimeout),
            ("experiment_stop", ExperimentStop),
        ):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, kind(value))
            except ValueError:
                allowed = ", ".join(m.value for m in kind)
                raise ValueError(f"{name} must be one of {allowed}, not {value!r}") from None
        steps: object = self.steps  # from JSON it may be anything
        if not isinstance(steps, tuple | list):
            raise ValueError(f"steps must be a list of percentages, not {steps!r}")
        object.__setattr__(self, "steps", tuple(_number("steps", s) for s in steps))
        object.__setattr__(self, "compare", _compare_settings(self.compare))
        self._validate()

    def _validate(self) -> None:
        for name in ("model", "champion_version", "candidate_version", "sticky_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, not {value!r}")
        if self.champion_version == self.candidate_version:
            raise ValueError(
                f"candidate_version must differ from champion_version ({self.champion_version!r})"
            )
        for name in ("step_interval_s", "max_wait_s", "shadow_duration_s", "experiment_duration_s"):
            if _number(name, getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be > 0, not {getattr(self, name)!r}")
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int):
            raise ValueError(f"min_samples must be an integer, not {self.min_samples!r}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, not {self.min_samples}")
        if self.strategy is Strategy.AB:
            self._validate_experiment()
        else:
            self._validate_steps()
        if self.strategy is Strategy.SHADOW_FIRST:
            if not 0 < _number("shadow_percent", self.shadow_percent) <= 100:
                raise ValueError(f"shadow_percent must be in (0, 100], not {self.shadow_percent}")
            if self.shadow_duration_s > self.max_wait_s:
                raise ValueError(
                    f"shadow_duration_s ({self.shadow_duration_s:g}) must not exceed "
                    f"max_wait_s ({self.max_wait_s:g}): the shadow would time out before it "
                    "is first judged"
                )

    def _validate_steps(self) -> None:
        if not self.steps:
            raise ValueError("steps must list at least one percentage, e.g. [5, 25, 50, 100]")
        for step in self.steps:
            if not 0 < step <= 100:
                raise ValueError(f"steps must lie in (0, 100]: {step:g} does not")
        for before, after in zip(self.steps, self.steps[1:], strict=False):
            if after <= before:
                raise ValueError(
                    f"steps must increase strictly: {after:g} follows {before:g} in "
                    f"{list(self.steps)}"
                )
        if self.steps[0] >= 100:
            raise ValueError(
                "steps need at least one step below 100: a 100 % step is the promotion itself "
                "and is never judged"
            )
        if self.step_interval_s > self.max_wait_s:
            raise ValueError(
                f"step_interval_s ({self.step_interval_s:g}) must not exceed max_wait_s "
                f"({self.max_wait_s:g}): every step would time out before it is judged"
            )

    def _validate_experiment(self) -> None:
        if not isinstance(self.experiment_id, str) or not self.experiment_id.strip():
            raise ValueError("experiment_id is required for an A/B rollout (strategy 'ab')")
        if not 0 < _number("experiment_percent", self.experiment_percent) < 100:
            raise ValueError(
                f"experiment_percent must be in (0, 100), not {self.experiment_percent:g}"
            )
        if (
            self.experiment_stop is ExperimentStop.SEQUENTIAL
            and self.step_interval_s > self.experiment_duration_s
        ):
            raise ValueError(
                f"step_interval_s ({self.step_interval_s:g}) must not exceed "
                f"experiment_duration_s ({self.experiment_duration_s:g})"
            )

    @property
    def first_judgment_after_s(self) -> float:
        """How long the first phase runs before it is first judged."""
        if self.strategy is Strategy.SHADOW_FIRST:
            return self.shadow_duration_s
        if self.strategy is Strategy.AB and self.experiment_stop is ExperimentStop.FIXED:
            return self.experiment_duration_s
        return self.step_interval_s

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data (``from_dict`` reads it back)."""
        data = asdict(self)
        data["steps"] = list(self.steps)
        data["compare"] = dict(self.compare)
        for name in ("strategy", "on_timeout", "experiment_stop"):
            data[name] = data[name].value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutSpec:
        """Read a spec from JSON data; missing settings take their defaults.

        Raises:
            ValueError: an unknown key, a missing required key or an invalid setting.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown rollout settings: {', '.join(unknown)}")
        missing = [k for k in ("model", "champion_version", "candidate_version") if k not in data]
        if missing:
            raise ValueError(f"missing rollout settings: {', '.join(missing)}")
        values = dict(data)
        if "steps" in values and isinstance(values["steps"], list):
            values["steps"] = tuple(values["steps"])
        return cls(**values)


def _compare_settings(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f"compare must be an object of evaluation settings, not {value!r}")
    unknown = sorted(str(k) for k in value if k not in COMPARE_SETTINGS)
    if unknown:
        allowed = ", ".join(COMPARE_SETTINGS)
        raise ValueError(f"unknown compare settings: {', '.join(unknown)} (allowed: {allowed})")
    settings: dict[str, float] = {}
    for name, raw in value.items():
        number = _number(f"compare.{name}", raw)
        low, high, low_in, high_in = COMPARE_SETTINGS[name]
        above = number >= low if low_in else number > low
        below = high is None or (number <= high if high_in else number < high)
        if not (above and below):
            opening, closing = "[" if low_in else "(", "]" if high_in else ")"
            upper = "inf" if high is None else f"{high:g}"
            raise ValueError(
                f"compare.{name} must lie in {opening}{low:g}, {upper}{closing}, not {number:g}"
            )
        settings[str(name)] = number
    return settings


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return float(value)
