"""Following a rollout: each decision as a line, the current weight as a status line."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Final

from rich.console import Console

from orchard_cli.retraining_client import (
    OutageNotice,
    RetrainingClient,
    retry_while_unreachable,
)

__all__ = [
    "FINISHED",
    "decision_line",
    "rollout_summary",
    "status_line",
    "verdict_summary",
    "watch_rollout",
]

FINISHED: Final = {"promoted": 0, "rolled_back": 1, "aborted": 1}
"""Finished statuses and the exit status ``--wait`` gives each."""


def fmt_number(value: float) -> str:
    """A number as short as it reads (``25``, ``2.5``)."""
    return f"{value:g}"


def _weight_after(decision: Mapping[str, Any], rollout: Mapping[str, Any]) -> str | None:
    to_status = decision.get("to_status")
    if to_status == "promoted":
        return "100%"
    if to_status in ("rolled_back", "aborted"):
        return "0%"
    steps = (rollout.get("spec") or {}).get("steps") or []
    step = decision.get("to_step")
    if isinstance(step, int) and 0 <= step < len(steps):
        return f"{fmt_number(float(steps[step]))}%"
    return None


def verdict_summary(verdict: Mapping[str, Any], samples: int | None = None) -> str:
    """The verdict and its key statistics, e.g. ``FAIL error_rate FAIL Δ+0.412 · n 80/31``."""
    parts = [str(verdict.get("verdict", "?"))]
    signals = [s for s in verdict.get("signals") or [] if isinstance(s, Mapping)]
    for signal in signals:
        text = f"{signal.get('metric', '?')} {signal.get('verdict', '?')}"
        statistic = signal.get("statistic")
        if isinstance(statistic, int | float) and not isinstance(statistic, bool):
            text += f" Δ{statistic:+.3f}"
        parts.append(text)
    sizes = verdict.get("sample_sizes")
    if isinstance(sizes, Mapping) and "candidate" in sizes:
        parts.append(f"n {sizes.get('baseline', '?')}/{sizes['candidate']}")
    elif samples is not None:
        parts.append(f"n {samples}")
    return " · ".join(parts)


def decision_line(decision: Mapping[str, Any], rollout: Mapping[str, Any]) -> str:
    """One decision as a line: time, action, from → to, weight, verdict, reason."""
    at = decision.get("at")
    when = datetime.fromtimestamp(float(at)).strftime("%H:%M:%S") if at is not None else "--:--:--"
    parts = [
        when,
        f"{decision.get('action', '?'):<8}",
        f"{decision.get('from_status', '?')} → {decision.get('to_status', '?')}",
    ]
    weight = _weight_after(decision, rollout)
    if weight is not None:
        parts.append(f"weight {weight}")
    verdict = decision.get("verdict")
    if isinstance(verdict, Mapping):
        samples = decision.get("samples")
        parts.append(verdict_summary(verdict, samples if isinstance(samples, int) else None))
    line = "  ".join(parts)
    reason = decision.get("reason")
    actor = decision.get("actor")
    if reason:
        line += f" — {reason}"
    if actor:
        line += f" (by {actor})"
    return line


def status_line(rollout: Mapping[str, Any]) -> str:
    """Where the rollout stands now: status and weights."""
    state = rollout.get("state") or {}
    text = (
        f"rollout {rollout.get('id')} of {rollout.get('model')} v{rollout.get('candidate_version')}"
        f": {state.get('status', rollout.get('status'))}, candidate weight "
        f"{fmt_number(float(state.get('candidate_weight') or 0))}%"
    )
    if state.get("mirror_percent"):
        text += f", mirroring {fmt_number(float(state['mirror_percent']))}%"
    if state.get("pause_reason") and state.get("status") == "paused":
        text += f" ({state['pause_reason']})"
    return text


def rollout_summary(rollout: Mapping[str, Any]) -> str:
    """One line naming the rollout: model, candidate, champion, strategy and steps."""
    spec = rollout.get("spec") or {}
    steps = "→".join(f"{fmt_number(float(s))}%" for s in spec.get("steps") or [])
    champion = spec.get("champion_version")
    vs = f" vs champion {champion}" if champion else ""
    return (
        f"Rollout {rollout.get('id')} of {rollout.get('model')}: candidate "
        f"{rollout.get('candidate_version')}{vs}, {spec.get('strategy', 'canary')} {steps}".rstrip()
    )


@contextlib.contextmanager
def _live_status(console: Console, text: str) -> Iterator[Callable[[str], None]]:
    if not console.is_terminal:  # a spinner in a log file is noise
        yield lambda _text: None
        return
    with console.status(text) as status:
        yield lambda new: status.update(new)


def watch_rollout(
    client: RetrainingClient,
    rollout: dict[str, Any],
    console: Console,
    errors: Console,
    *,
    unreachable_timeout_s: float = 60.0,
    interval_s: float = 1.0,
    shown: int = 0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, dict[str, Any]]:
    """Poll ``rollout`` until it finishes, printing each new decision; returns (exit, last).

    Raises:
        RetrainingError: it stayed unreachable past the timeout, or refused a request.
    """
    notice = OutageNotice(errors, unreachable_timeout_s)
    with _live_status(console, status_line(rollout)) as update:
        while True:
            decisions = (rollout.get("state") or {}).get("decisions") or []
            for decision in decisions[shown:]:
                console.print(decision_line(decision, rollout), markup=False, highlight=False)
            shown = len(decisions)
            status = str(rollout.get("status"))
            if status in FINISHED:
                break
            update(status_line(rollout))
            sleep(interval_s)
            rollout = retry_while_unreachable(
                functools.partial(client.get_rollout, rollout["id"]),
                timeout_s=unreachable_timeout_s,
                on_retry=notice,
                interval_s=interval_s,
                clock=clock,
                sleep=sleep,
            )
            notice.recovered()
    word = {"promoted": "promoted", "rolled_back": "rolled back", "aborted": "aborted"}[status]
    console.print(
        f"Rollout {rollout['id']} {word}: {rollout.get('model')} version "
        f"{rollout.get('candidate_version')}"
        + (" is the champion" if status == "promoted" else ""),
        markup=False,
        highlight=False,
    )
    return FINISHED[status], rollout
