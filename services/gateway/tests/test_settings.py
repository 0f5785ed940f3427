"""Gateway settings from ORCHARD_GATEWAY_* variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchard_core import SettingsError, load_settings
from orchard_gateway import GatewaySettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ORCHARD_GATEWAY_"):
            monkeypatch.delenv(name)
    settings = load_settings(GatewaySettings)
    assert settings.service_name == "gateway"
    assert settings.port == 8000
    assert settings.upstream_timeout_s == 30
    assert settings.max_body_bytes == 8 * 1024 * 1024
    assert settings.routes_poll_s == 1.0


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHARD_GATEWAY_PORT", "9100")
    monkeypatch.setenv("ORCHARD_GATEWAY_ROUTES_FILE", "/data/routes.yaml")
    monkeypatch.setenv("ORCHARD_GATEWAY_UPSTREAM_POOL_SIZE", "8")
    settings = load_settings(GatewaySettings)
    assert settings.port == 9100
    assert settings.routes_file == Path("/data/routes.yaml")
    assert settings.upstream_pool_size == 8


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHARD_GATEWAY_MAX_BODY_BYTES", "lots")
    with pytest.raises(SettingsError, match="ORCHARD_GATEWAY_MAX_BODY_BYTES"):
        load_settings(GatewaySettings)


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "gateway-settings.md").read_text()
    missing = [
        f"ORCHARD_GATEWAY_{name.upper()}"
        for name in GatewaySettings.model_fields
        if f"`ORCHARD_GATEWAY_{name.upper()}`" not in doc
    ]
    assert missing == [], f"add these to docs/gateway-settings.md: {missing}"
