"""Settings are validated at start-up and a bad value names its environment variable."""

from __future__ import annotations

import pytest
from pydantic_settings import SettingsConfigDict

from orchard_core.settings import ServiceSettings, SettingsError, load_settings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ORCHARD_DEMO_", extra="ignore", frozen=True)
    timeout_s: float = 2.0
    models: dict[str, str] = {}


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHARD_DEMO_PORT", "9123")
    monkeypatch.setenv("ORCHARD_DEMO_TIMEOUT_S", "0.5")
    settings = load_settings(DemoSettings)
    assert settings.port == 9123
    assert settings.timeout_s == 0.5


def test_bad_value_stops_with_the_variable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHARD_DEMO_PORT", "eighty")
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings)
    message = str(info.value)
    assert "ORCHARD_DEMO_PORT" in message
    assert "'eighty'" in message


def test_out_of_range_port_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHARD_DEMO_PORT", "70000")
    with pytest.raises(SettingsError, match="ORCHARD_DEMO_PORT"):
        load_settings(DemoSettings)


def test_bad_log_level_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHARD_DEMO_LOG_LEVEL", "LOUD")
    with pytest.raises(SettingsError, match="ORCHARD_DEMO_LOG_LEVEL"):
        load_settings(DemoSettings)


def test_settings_error_is_a_clean_exit() -> None:
    # SystemExit carries the message to stderr without a traceback when raised from main().
    assert issubclass(SettingsError, SystemExit)


def test_malformed_json_for_a_complex_field_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCHARD_DEMO_MODELS", '{"m": ')
    with pytest.raises(SettingsError, match="ORCHARD_DEMO_MODELS: not valid JSON"):
        load_settings(DemoSettings)
    monkeypatch.setenv("ORCHARD_DEMO_MODELS", '{"m": "models:/m@champion"}')
    assert load_settings(DemoSettings).models == {"m": "models:/m@champion"}
