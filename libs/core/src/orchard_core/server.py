"""Running a service: logging set-up, then uvicorn with uvloop and httptools."""

from __future__ import annotations

from types import FrameType

import uvicorn
from fastapi import FastAPI

from orchard_core.logs import configure_logging
from orchard_core.settings import ServiceSettings

__all__ = ["serve"]


class _Server(uvicorn.Server):
    """uvicorn, but a graceful shutdown on SIGTERM/SIGINT ends the process with status 0.

    uvicorn re-raises the captured signal after shutting down, so supervisors would see
    -15 for a clean stop; forgetting the captured signal keeps the exit status meaningful.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve ``app`` on the settings' host and port until SIGINT/SIGTERM (then exit 0)."""
    configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # ObservabilityMiddleware logs requests when asked to
        log_config=None,  # keep the handlers configure_logging installed
        # On SIGTERM uvicorn stops listening, then lets in-flight requests finish this long.
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    server = _Server(config)
    server.run()
    if not server.started:  # start-up failed (port taken, lifespan error): say so by status
        raise SystemExit(3)
