"""Settings from ORCHARD_INFERENCE_* variables; bad values stop start-up with the name."""

from __future__ import annotations

import pytest

from orchard_core import SettingsError, load_settings
from orchard_inference import InferenceSettings


def test_defaults_and_models_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "ORCHARD_INFERENCE_MODELS", '{"credit-risk": "models:/credit-risk@champion"}'
    )
    monkeypatch.setenv("ORCHARD_INFERENCE_TORCH_THREADS", "2")
    settings = load_settings(InferenceSettings)
    assert settings.service_name == "inference"
    assert settings.port == 8080
    assert settings.models == {"credit-risk": "models:/credit-risk@champion"}
    assert settings.torch_threads == 2
    assert settings.device == "auto"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ORCHARD_INFERENCE_MODELS", "not json", "ORCHARD_INFERENCE_MODELS: Value error, must be a JSON object"),
        ("ORCHARD_INFERENCE_MODELS", '["a"]', "ORCHARD_INFERENCE_MODELS: Input should be a valid dictionary"),
        ("ORCHARD_INFERENCE_MODELS", '{"a/b": "x"}', "model name 'a/b' must be non-empty without '/'"),
        ("ORCHARD_INFERENCE_MODELS", '{"a": " "}', "model 'a' has an empty uri"),
        ("ORCHARD_INFERENCE_TORCH_THREADS", "0", "ORCHARD_INFERENCE_TORCH_THREADS"),
        ("ORCHARD_INFERENCE_DEVICE", "tpu", "ORCHARD_INFERENCE_DEVICE"),
        ("ORCHARD_INFERENCE_BATCH_ENABLED", "maybe", "ORCHARD_INFERENCE_BATCH_ENABLED: "),
        ("ORCHARD_INFERENCE_BATCH_MAX_SIZE", "0", "ORCHARD_INFERENCE_BATCH_MAX_SIZE: "),
        ("ORCHARD_INFERENCE_BATCH_MAX_DELAY_MS", "-1", "ORCHARD_INFERENCE_BATCH_MAX_DELAY_MS: "),
        ("ORCHARD_INFERENCE_BATCH_MAX_DELAY_MS", "5000", "ORCHARD_INFERENCE_BATCH_MAX_DELAY_MS: "),
        ("ORCHARD_INFERENCE_BATCHING", "nope", "ORCHARD_INFERENCE_BATCHING: Value error, must be a JSON object"),
        ("ORCHARD_INFERENCE_BATCHING", '{"m": {"max_size": 0}}', "ORCHARD_INFERENCE_BATCHING: Value error, model 'm': max_size: Input should be greater than or equal to 1"),
        ("ORCHARD_INFERENCE_BATCHING", '{"m": {"size": 8}}', "model 'm': size: Extra inputs are not permitted"),
        ("ORCHARD_INFERENCE_BATCHING", '{"m": 8}', "ORCHARD_INFERENCE_BATCHING: Value error, model 'm'"),
    ],
)  # fmt: skip
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match="invalid settings") as raised:
        load_settings(InferenceSettings)
    assert message in str(raised.value)
