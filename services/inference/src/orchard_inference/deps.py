"""Dependencies the routes take, as typed ``Annotated`` aliases (swap with dependency_overrides)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from orchard_inference.dataplane import DataPlane

__all__ = ["BodyDep", "DataPlaneDep"]


# async on purpose: FastAPI runs sync dependencies in a thread pool, a hop the hot path avoids.
async def get_dataplane(request: Request) -> DataPlane:
    """The app's data plane (built by ``create_app``)."""
    return cast(DataPlane, request.app.state.dataplane)


async def get_body(request: Request) -> bytes:
    """The raw request body; the data plane decodes it with orjson, not pydantic."""
    return await request.body()


DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
BodyDep = Annotated[bytes, Depends(get_body)]
