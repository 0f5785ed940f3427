"""Structured JSON logging with the request id and, when tracing is on, trace/span ids."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Final, Protocol

import orjson
from opentelemetry import trace

__all__ = [
    "LOG_FIELDS_KEY",
    "JsonFormatter",
    "add_log_fields",
    "configure_logging",
    "current_request_id",
    "log_fields",
    "request_id_var",
]

LOG_FIELDS_KEY: Final = "log_fields"
"""Key, in an ASGI scope's ``state``, of the fields the request's access log line carries."""

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "orchard_request_id", default=None
)

# LogRecord attributes that are not user-supplied ``extra`` fields.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return request_id_var.get()


class _HasScope(Protocol):
    @property
    def scope(self) -> MutableMapping[str, Any]: ...


def add_log_fields(target: _HasScope | MutableMapping[str, Any], **fields: Any) -> None:
    """Add ``fields`` to the access log line of the request ``target`` (a Starlette
    ``Request`` or an ASGI scope), e.g. ``add_log_fields(request, model="m", version="2")``.

    They land in ``scope["state"]["log_fields"]``, which the observability middleware reads
    when the request is done. Later values replace earlier ones. Never put a secret here.
    """
    scope: MutableMapping[str, Any] = target if isinstance(target, MutableMapping) else target.scope
    state = scope.setdefault("state", {})
    state.setdefault(LOG_FIELDS_KEY, {}).update(fields)


def log_fields(scope: MutableMapping[str, Any]) -> dict[str, Any]:
    """The fields added to the request's access log line with :func:`add_log_fields`, minus
    any whose name a log record reserves (``msg``, ``name``...), which logging would refuse."""
    state = scope.get("state")
    fields = state.get(LOG_FIELDS_KEY) if isinstance(state, MutableMapping) else None
    if not isinstance(fields, MutableMapping):
        return {}
    return {k: v for k, v in fields.items() if isinstance(k, str) and k not in _RESERVED}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, service, ids and extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            entry["trace_id"] = format(ctx.trace_id, "032x")
            entry["span_id"] = format(ctx.span_id, "016x")
            if not ctx.trace_flags.sampled:
                # The ids still tie log lines together; the trace itself was not kept.
                entry["trace_sampled"] = False
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = []
        request_id = request_id_var.get()
        if request_id:
            ids.append(f"request_id={request_id}")
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            ids.append(f"trace_id={ctx.trace_id:032x} span_id={ctx.span_id:016x}")
        return f"{text} [{' '.join(ids)}]" if ids else text


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    """Send every logger (ours, uvicorn's) to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(service)
        if json
        else _PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
