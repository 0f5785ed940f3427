"""Cron schedules per model: each firing is a trigger of kind ``schedule``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from croniter import croniter
from starlette.concurrency import run_in_threadpool

from orchard_retraining.triggers import Trigger, TriggerIntake

__all__ = ["ScheduleRunner"]

_log = logging.getLogger("orchard.retraining.schedules")


class ScheduleRunner:
    """Fires each model's schedule (UTC) through the trigger intake."""

    def __init__(self, schedules: Mapping[str, str], intake: TriggerIntake, now: float) -> None:
        self._intake = intake
        self._schedules = dict(schedules)
        self._next = {model: self._after(expr, now) for model, expr in self._schedules.items()}

    @staticmethod
    def _after(expression: str, moment: float) -> float:
        start = datetime.fromtimestamp(moment, UTC)
        return float(croniter(expression, start).get_next(float))

    def due(self, now: float) -> list[str]:
        """The models whose next firing is at or before ``now``."""
        return sorted(model for model, at in self._next.items() if at <= now)

    def fire_due(self, now: float) -> list[Trigger]:
        """Record a trigger for every schedule due by ``now`` and plan its next firing."""
        fired = []
        for model in self.due(now):
            expression = self._schedules[model]
            at = self._next[model]
            trigger = Trigger(
                source="schedule",
                model=model,
                kind="schedule",
                reason=f"scheduled retraining ({expression})",
                details={"schedule": expression, "due_at": at},
                external_id=f"schedule:{model}:{at:.0f}",
            )
            self._intake.receive(trigger, now)
            fired.append(trigger)
            self._next[model] = self._after(expression, now)
        return fired

    async def run(self) -> None:
        """Fire schedules as they come due, until cancelled."""
        if not self._next:
            return
        while True:
            wait = max(0.0, min(self._next.values()) - time.time())
            await asyncio.sleep(min(wait, 60.0))
            try:
                await run_in_threadpool(self.fire_due, time.time())
            except Exception:
                _log.exception("scheduled triggers failed; trying again")
