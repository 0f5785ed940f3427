"""Settings: defaults, the environment, clear errors, and every one documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchard_core import SettingsError, load_settings
from orchard_evaluation.settings import EvaluationSettings


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHARD_EVALUATION_DATABASE_URL", "postgresql+psycopg://u@db/evaluation")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    settings = load_settings(EvaluationSettings)
    assert settings.database_url == "postgresql+psycopg://u@db/evaluation"
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
    assert settings.port == 8002


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ORCHARD_EVALUATION_BUCKET_S", "soon"),
        ("ORCHARD_EVALUATION_CONCEPT_DRIFT_METHOD", "magic"),
        ("ORCHARD_EVALUATION_QUALITY_DROP_TOLERANCE", "2"),
    ],
)
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings(EvaluationSettings)


def test_rollups_must_be_whole_numbers_of_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHARD_EVALUATION_BUCKET_S", "70")
    with pytest.raises(SettingsError, match="multiple"):
        load_settings(EvaluationSettings)


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "evaluation-settings.md").read_text()
    missing = [
        f"ORCHARD_EVALUATION_{name.upper()}"
        for name in EvaluationSettings.model_fields
        if f"`ORCHARD_EVALUATION_{name.upper()}`" not in doc
    ]
    assert missing == [], f"add these to docs/evaluation-settings.md: {missing}"
