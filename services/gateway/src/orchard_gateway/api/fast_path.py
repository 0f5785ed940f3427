"""The prediction fast path: ``POST /v2/models/{m}[/versions/{v}]/infer`` without FastAPI's
routing and dependency resolution.

Those two were about 40% of the gateway's own time per prediction (see
``docs/benchmarks/gateway-latency.md``). ``InferFastPath`` is the innermost middleware: the
core observability middleware (request id, access log, RED metrics), tracing and CORS still
wrap it. It matches the two routes' own path patterns by hand, then does what FastAPI would:
resolves the routes' one dependency (``predict_call``: auth, rate limit, body limit,
predictor), calls the routes' shared body (``answer_infer``), and turns a raised error into
its answer with the app's own exception handlers. Every other request, and these paths under
a ``root_path`` or while a test overrides dependencies, goes on to FastAPI, where the same
routes stay registered (OpenAPI, 405 for other methods).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from orchard_gateway.api import v2
from orchard_gateway.deps import predict_call

__all__ = ["InferFastPath"]

# An HTTP exception handler as FastAPI calls it (the app registers no WebSocket ones).
_Handler = Callable[[Request, Exception], "Awaitable[Response] | Response"]


def _infer_routes() -> tuple[APIRoute, ...]:
    routes = tuple(
        route
        for route in v2.router.routes
        if isinstance(route, APIRoute) and route.endpoint in (v2.infer, v2.infer_version)
    )
    if len(routes) != 2:
        raise RuntimeError("the OIP v2 infer routes are not registered on the v2 router")
    return routes


class InferFastPath:
    """Answers ``POST`` to the OIP v2 infer routes as FastAPI would, without its router."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes = _infer_routes()
        self._handlers: Mapping[Any, _Handler] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        for route in self._routes:
            match = route.path_regex.match(path)
            if match is not None:
                break
        else:
            await self.app(scope, receive, send)
            return
        app: FastAPI = scope["app"]
        if app.dependency_overrides:  # a test swapped a dependency: FastAPI resolves them
            await self.app(scope, receive, send)
            return
        params = {
            name: route.param_convertors[name].convert(value)
            for name, value in match.groupdict().items()
        }
        # What FastAPI's router puts in the scope: the access log and metrics read "route".
        scope.setdefault("router", app.router)
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {**scope.get("path_params", {}), **params}
        request = Request(scope, receive, send)
        try:
            call = await predict_call(request)
            response = await v2.answer_infer(request, call, params["model"], params.get("version"))
        except Exception as exc:
            response = await self._handle(app, request, exc)
        await response(scope, receive, send)

    async def _handle(self, app: FastAPI, request: Request, exc: Exception) -> Response:
        """The answer the app's ExceptionMiddleware would give, or ``exc`` raised again when
        only the server-error handler (outside this middleware) may answer it."""
        if self._handlers is None:
            # As FastAPI's middleware stack: 500/Exception belong to ServerErrorMiddleware.
            self._handlers = {
                key: cast(_Handler, handler)
                for key, handler in app.exception_handlers.items()
                if key not in (500, Exception)
            }
        handler = None
        if isinstance(exc, HTTPException):
            handler = self._handlers.get(exc.status_code)
        if handler is None:
            handler = next(
                (self._handlers[cls] for cls in type(exc).__mro__ if cls in self._handlers), None
            )
        if handler is None:
            raise exc
        if inspect.iscoroutinefunction(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        exc.__traceback__ = None  # as Starlette: a reused exception must not grow a traceback
        assert isinstance(response, Response)
        return response
