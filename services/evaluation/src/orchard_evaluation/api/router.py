"""Every router of the evaluation service, in the order they are matched."""

from __future__ import annotations

from fastapi import APIRouter

from orchard_evaluation.api import (
    compare,
    drift,
    events,
    experiments,
    exports,
    feedback,
    profiles,
    quality,
    reports,
    triggers,
)

__all__ = ["API_ROUTERS"]

API_ROUTERS: tuple[APIRouter, ...] = (
    events.router,
    feedback.router,
    triggers.router,
    exports.router,
    quality.router,
    profiles.router,
    compare.router,
    drift.router,
    experiments.router,
    reports.router,
)
