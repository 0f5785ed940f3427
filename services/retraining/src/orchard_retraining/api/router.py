"""Every router of the retraining service, in the order they are matched."""

from __future__ import annotations

from fastapi import APIRouter

from orchard_retraining.api import pipeline_runs, rollouts, routes, triggers

__all__ = ["API_ROUTERS"]

API_ROUTERS: tuple[APIRouter, ...] = (
    triggers.router,
    rollouts.router,
    pipeline_runs.router,
    routes.router,
)
