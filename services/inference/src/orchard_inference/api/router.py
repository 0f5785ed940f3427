"""Collects the API routers (and nothing else)."""

from __future__ import annotations

from fastapi import APIRouter

from orchard_inference.api import repository, v1, v2

__all__ = ["api_router"]

api_router = APIRouter()
api_router.include_router(v2.router)
api_router.include_router(repository.router)
api_router.include_router(v1.router)
api_router.include_router(v1.root_router)
