"""The route table the gateways poll: champions, canaries, A/B arms and mirrors."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from orchard_core.responses import JSON_MEDIA_TYPE
from orchard_retraining.deps import ControllerDep
from orchard_retraining.route_table import etag_matches

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["routes"])


@router.get("/routes")
async def route_table(request: Request, controller: ControllerDep) -> Response:
    """The route table (ETag; If-None-Match answers 304 when it has not changed)."""
    table = await run_in_threadpool(controller.route_table)
    headers = {"ETag": table.etag, "Cache-Control": "no-cache"}
    if etag_matches(request.headers.get("if-none-match"), table.etag):
        return Response(status_code=304, headers=headers)
    return Response(table.body, media_type=JSON_MEDIA_TYPE, headers=headers)
