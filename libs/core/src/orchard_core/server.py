"""Running a service: logging set-up, then uvicorn with uvloop and httptools."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from orchard_core.logs import configure_logging
from orchard_core.settings import ServiceSettings

__all__ = ["serve"]


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve ``app`` on the settings' host and port until SIGINT/SIGTERM."""
    configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # ObservabilityMiddleware logs requests when asked to
        log_config=None,  # keep the handlers configure_logging installed
        timeout_graceful_shutdown=10,
    )
