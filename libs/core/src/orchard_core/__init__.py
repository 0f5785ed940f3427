"""Orchard's shared library: settings, logging, metrics, tracing, errors, app factory, codec.

Imported by every service; never run on its own.
"""

from orchard_core.app import create_app
from orchard_core.errors import (
    Conflict,
    Forbidden,
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    NotFound,
    OrchardError,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UpstreamError,
    UpstreamTimeout,
    install_error_handlers,
)
from orchard_core.logs import configure_logging, current_request_id
from orchard_core.metrics import HttpMetrics, new_registry
from orchard_core.responses import json_response
from orchard_core.server import serve
from orchard_core.settings import ServiceSettings, SettingsError, load_settings

__all__ = [
    "Conflict",
    "Forbidden",
    "HttpMetrics",
    "InferenceError",
    "InvalidInput",
    "ModelNotFound",
    "ModelNotReady",
    "NotFound",
    "OrchardError",
    "PayloadTooLarge",
    "ServiceSettings",
    "ServiceUnavailable",
    "SettingsError",
    "TooManyRequests",
    "Unauthorized",
    "UpstreamError",
    "UpstreamTimeout",
    "configure_logging",
    "create_app",
    "current_request_id",
    "install_error_handlers",
    "json_response",
    "load_settings",
    "new_registry",
    "serve",
]
