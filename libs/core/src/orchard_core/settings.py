"""Settings base for every Orchard service.

Each service subclasses ``ServiceSettings`` with its own ``env_prefix``
(``ORCHARD_<SERVICE>_``). ``load_settings`` validates at start-up and turns a bad value into
one message that names the environment variable, instead of a pydantic traceback.
"""

from __future__ import annotations

import re
from typing import Literal, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

__all__ = ["ServiceSettings", "SettingsError", "load_settings"]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ServiceSettings(BaseSettings):
    """Settings every service has; subclasses set ``env_prefix`` and add their own."""

    model_config = SettingsConfigDict(env_prefix="ORCHARD_", extra="ignore", frozen=True)

    service_name: str = Field(default="orchard", description="Name in logs, metrics and traces.")
    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port to listen on.")
    log_level: LogLevel = Field(default="INFO", description="Minimum level of log lines.")
    log_json: bool = Field(default=True, description="JSON log lines (False: plain text).")
    access_log: bool = Field(default=False, description="One log line per request.")
    shutdown_grace_s: int = Field(
        default=20,
        ge=0,
        le=3600,
        description=(
            "On SIGTERM, how long in-flight requests may take to finish before they are "
            "cancelled. Keep it under the pod's terminationGracePeriodSeconds (30 by default)."
        ),
    )


class SettingsError(SystemExit):
    """Start-up stopped because a setting is invalid; the message names the variable."""


S = TypeVar("S", bound=ServiceSettings)


def _env_name(settings_cls: type[ServiceSettings], loc: tuple[int | str, ...]) -> str:
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    field = str(loc[0]) if loc else "?"
    return (prefix + field).upper()


def load_settings(settings_cls: type[S], **overrides: object) -> S:
    """Build settings from the environment (and overrides), or stop with a clear message.

    Raises:
        SettingsError: a value is invalid; the message names the environment variable.
    """
    try:
        return settings_cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = _env_name(settings_cls, tuple(err.get("loc", ())))
            given = err.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"{name}: {err.get('msg', 'invalid value')}{shown}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
    except SourceError as exc:
        # pydantic-settings fails before validation when a complex field's JSON is malformed.
        match = re.search(r'field "([^"]+)"', str(exc))
        name = _env_name(settings_cls, (match.group(1),)) if match else "?"
        raise SettingsError(f"invalid settings:\n  {name}: not valid JSON") from None
