"""All the gateway's API routers, in the order they are matched."""

from __future__ import annotations

from fastapi import APIRouter

from orchard_gateway.api import batch, feedback, jobs, v1, v2

__all__ = ["api_router"]

api_router = APIRouter()
api_router.include_router(v2.router)
api_router.include_router(v1.router)
api_router.include_router(feedback.router)
api_router.include_router(batch.router)
api_router.include_router(jobs.router)
