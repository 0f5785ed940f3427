"""Settings: the environment, clear errors that name the variable, and every one documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchard_core import SettingsError, load_settings
from orchard_retraining.settings import RetrainingSettings


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("ORCHARD_RETRAINING_MODELS", '["credit-risk", "digits"]')
    monkeypatch.setenv("ORCHARD_RETRAINING_ROLLOUT_DEFAULTS", '{"steps": [10, 50, 100]}')
    monkeypatch.setenv("ORCHARD_RETRAINING_PIPELINE_COMMAND", '["train", "--quiet"]')
    settings = load_settings(RetrainingSettings)
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
    assert settings.models == ["credit-risk", "digits"]
    assert settings.rollout_defaults == {"steps": [10, 50, 100]}
    assert settings.pipeline_command == ["train", "--quiet"]
    assert settings.port == 8003


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ORCHARD_RETRAINING_SCHEDULES", '{"credit-risk": "every night"}'),
        ("ORCHARD_RETRAINING_MODELS", "credit-risk"),
        ("ORCHARD_RETRAINING_ROLLOUT_DEFAULTS", '{"steps": [50, 20]}'),
        ("ORCHARD_RETRAINING_ROLLOUT_DEFAULTS", '{"model": "digits"}'),
        ("ORCHARD_RETRAINING_GATE", '{"metrics": [{"metric": "vibes"}]}'),
        ("ORCHARD_RETRAINING_TRAFFIC_BACKEND", "docker"),
        ("ORCHARD_RETRAINING_CONTROLLER_INTERVAL_S", "0"),
    ],
)
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings(RetrainingSettings)


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "retraining-settings.md").read_text()
    missing = [
        f"ORCHARD_RETRAINING_{name.upper()}"
        for name in RetrainingSettings.model_fields
        if f"`ORCHARD_RETRAINING_{name.upper()}`" not in doc
    ]
    assert missing == [], f"add these to docs/retraining-settings.md: {missing}"
