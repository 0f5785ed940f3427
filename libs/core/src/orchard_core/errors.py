"""Orchard's error hierarchy and its one mapping to HTTP statuses.

Every error a service raises on purpose is an ``OrchardError``; the handlers installed by
``install_error_handlers`` turn it into ``{"error": "<message>"}`` with the status from
``STATUS_BY_ERROR``. Anything else becomes a 500 with a short message (never a stack trace)
and a log line carrying the request and trace ids.

    OrchardError                     500
    ├── InvalidInput                 400
    │   ├── PayloadTooLarge          413
    │   └── UnsupportedEncoding      415
    ├── Unauthorized                 401
    ├── Forbidden                    403
    ├── TooManyRequests              429
    ├── NotFound                     404
    │   └── ModelNotFound            404
    ├── Conflict                     409
    ├── ModelNotReady                503
    ├── ServiceUnavailable           503
    ├── UpstreamError                502
    │   └── UpstreamTimeout          504
    └── InferenceError               500
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

__all__ = [
    "STATUS_BY_ERROR",
    "Conflict",
    "Forbidden",
    "InferenceError",
    "InvalidInput",
    "ModelNotFound",
    "ModelNotReady",
    "NotFound",
    "OrchardError",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedEncoding",
    "UpstreamError",
    "UpstreamTimeout",
    "error_response",
    "install_error_handlers",
    "status_for",
]

_log = logging.getLogger("orchard.errors")


class OrchardError(Exception):
    """Base of every deliberate Orchard failure; 500 unless a subclass says otherwise."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(OrchardError):
    """The request is malformed or does not fit the model (400)."""


class PayloadTooLarge(InvalidInput):
    """The request body is larger than the configured limit (413)."""


class UnsupportedEncoding(InvalidInput):
    """The request body is compressed (a Content-Encoding other than identity) (415)."""


class Unauthorized(OrchardError):
    """Missing or wrong credentials (401)."""


class Forbidden(OrchardError):
    """Valid credentials without the role this needs (403)."""


class TooManyRequests(OrchardError):
    """Over a rate limit; the response should say when to retry (429)."""


class NotFound(OrchardError):
    """The addressed resource does not exist (404)."""


class ModelNotFound(NotFound):
    """The model, or the model version, is not known here (404)."""


class Conflict(OrchardError):
    """The request conflicts with the current state (409)."""


class ModelNotReady(OrchardError):
    """The model exists but cannot answer now: loading, or failed to load (503)."""


class ServiceUnavailable(OrchardError):
    """This service, or one it depends on, cannot serve now (503)."""


class UpstreamError(OrchardError):
    """An upstream service could not be reached or answered nonsense (502)."""


class UpstreamTimeout(UpstreamError):
    """An upstream service did not answer in time (504)."""


class InferenceError(OrchardError):
    """The model failed while computing a prediction (500)."""


# Most specific first: status_for walks the MRO, so subclasses win over their bases.
STATUS_BY_ERROR: Final[dict[type[OrchardError], int]] = {
    InvalidInput: 400,
    PayloadTooLarge: 413,
    UnsupportedEncoding: 415,
    Unauthorized: 401,
    Forbidden: 403,
    TooManyRequests: 429,
    NotFound: 404,
    ModelNotFound: 404,
    Conflict: 409,
    ModelNotReady: 503,
    ServiceUnavailable: 503,
    UpstreamError: 502,
    UpstreamTimeout: 504,
    InferenceError: 500,
    OrchardError: 500,
}


def status_for(error: OrchardError) -> int:
    """Return the HTTP status for an Orchard error (its closest class in the table)."""
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Build the house error body ``{"error": message}``."""
    return Response(
        content=orjson.dumps({"error": message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _describe_validation(exc: RequestValidationError) -> str:
    parts: list[str] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return "invalid request: " + "; ".join(parts) if parts else "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into ``{"error": ...}``."""

    async def on_orchard_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OrchardError)
        status = status_for(exc)
        if status == 503:  # an expected state (loading, failed model, dependency down)
            _log.warning("request refused: %s", exc.message, extra={"status": status})
        elif status >= 500:
            _log.error("request failed: %s", exc.message, extra={"status": status})
        # An error may say how to answer besides the body (Retry-After, WWW-Authenticate).
        headers = getattr(exc, "headers", None)
        return error_response(
            status, exc.message, dict(headers) if isinstance(headers, Mapping) else None
        )

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail: Any = exc.detail
        message = detail if isinstance(detail, str) else orjson.dumps(detail).decode()
        return error_response(exc.status_code, message, dict(exc.headers or {}))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, _describe_validation(exc))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        _log.exception("unhandled error: %s", type(exc).__name__)
        return error_response(500, f"internal error ({type(exc).__name__})")

    app.add_exception_handler(OrchardError, on_orchard_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
