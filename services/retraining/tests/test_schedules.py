"""Cron schedules per model fire triggers when due, and plan the next firing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchard_core import SettingsError, load_settings
from orchard_retraining.db import Database
from orchard_retraining.schedules import ScheduleRunner
from orchard_retraining.settings import RetrainingSettings
from orchard_retraining.triggers import TriggerIntake


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_a_daily_schedule_fires_once_a_day(tmp_path: Path) -> None:
    database = Database.open(f"sqlite:///{tmp_path / 'r.db'}")
    intake = TriggerIntake(database, cooldown_s=0)
    runner = ScheduleRunner({"credit-risk": "0 3 * * *"}, intake, _at("2026-11-27T01:00:00"))
    assert runner.fire_due(_at("2026-11-27T02:59:59")) == []
    [fired] = runner.fire_due(_at("2026-11-27T03:00:01"))
    assert (fired.model, fired.kind, fired.source) == ("credit-risk", "schedule", "schedule")
    assert runner.fire_due(_at("2026-11-27T10:00:00")) == []  # next: tomorrow 03:00
    assert len(runner.fire_due(_at("2026-11-28T03:00:00"))) == 1
    assert [r.source for r in intake.history()] == ["schedule", "schedule"]
    database.close()


def test_schedules_are_read_and_checked_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHARD_RETRAINING_SCHEDULES", '{"credit-risk": "*/15 * * * *"}')
    assert load_settings(RetrainingSettings).schedules == {"credit-risk": "*/15 * * * *"}
    monkeypatch.setenv("ORCHARD_RETRAINING_SCHEDULES", '{"credit-risk": "every day"}')
    with pytest.raises(SettingsError, match="ORCHARD_RETRAINING_SCHEDULES"):
        load_settings(RetrainingSettings)
