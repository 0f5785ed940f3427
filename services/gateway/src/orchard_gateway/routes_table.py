"""The route table: which backend serves which model, at which version.

``orchard up`` (and later retraining) writes it as a file::

    models:
      credit-risk: {backend: "http://127.0.0.1:8080", version: "1"}

The gateway loads it at start-up (a missing or invalid file stops the service), then
``RouteTableWatcher`` re-reads it whenever the file changes and swaps the new table in with
one assignment, so a request sees either the old table or the new one, never a mix. A file
that turns invalid keeps the last good table in force.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import orjson
import yaml

from orchard_core.errors import ModelNotFound, ServiceUnavailable
from orchard_gateway.metrics import GatewayMetrics

__all__ = [
    "Route",
    "RouteTable",
    "RouteTableError",
    "RouteTableWatcher",
    "load_route_table",
    "parse_route_table",
]

_log = logging.getLogger("orchard.gateway.routes")

# Names and versions become URL path segments, so they stay within a safe alphabet.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_LISTED_IN_ERRORS = 10


class RouteTableError(ValueError):
    """The route table file is missing, unreadable or invalid; the message says where."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where one model is served: the backend's base URL (no trailing slash) and version."""

    model: str
    backend: str
    version: str


class RouteTable(Mapping[str, Route]):
    """An immutable mapping of model name to ``Route``."""

    __slots__ = ("_routes",)

    def __init__(self, routes: Mapping[str, Route] | None = None) -> None:
        self._routes: Mapping[str, Route] = MappingProxyType(dict(routes or {}))

    def __getitem__(self, model: str) -> Route:
        return self._routes[model]

    def __iter__(self) -> Iterator[str]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def __repr__(self) -> str:
        return f"RouteTable({dict(self._routes)!r})"

    @property
    def models(self) -> list[str]:
        """The routed model names, sorted."""
        return sorted(self._routes)

    def resolve(self, model: str, version: str | None = None) -> Route:
        """The route of ``model``, checking ``version`` against the routed one if given.

        Raises:
            ModelNotFound: the model is not routed here, or not at that version.
        """
        route = self._routes.get(model)
        if route is None:
            raise ModelNotFound(f"model '{model}' is not routed by this gateway{self._known()}")
        if version is not None and version != route.version:
            raise ModelNotFound(
                f"model '{model}' has no version '{version}' here;"
                f" this gateway routes version '{route.version}'"
            )
        return route

    def _known(self) -> str:
        if not self._routes:
            return " (no models are routed)"
        if len(self._routes) > _LISTED_IN_ERRORS:
            return f" ({len(self._routes)} models are routed; GET /v2/models lists them)"
        return " (routed models: " + ", ".join(self.models) + ")"


def _backend_url(model: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RouteTableError(f"model '{model}': 'backend' must be an http(s) URL string")
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise RouteTableError(f"model '{model}': backend {value!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RouteTableError(
            f"model '{model}': backend {value!r} is not an http(s) URL like http://host:8080"
        )
    if parts.query or parts.fragment:
        raise RouteTableError(f"model '{model}': backend {value!r} must not have a query")
    return url


def _version(model: str, value: Any) -> str:
    # YAML reads `version: 1` as a number; registry versions are strings, so accept both.
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise RouteTableError(f"model '{model}': 'version' must be a non-empty string")
    if not _NAME.fullmatch(value):
        raise RouteTableError(
            f"model '{model}': version {value!r} may only use letters, digits, '.', '_' and '-'"
        )
    return value


def _route(model: Any, entry: Any) -> Route:
    if not isinstance(model, str) or not _NAME.fullmatch(model):
        raise RouteTableError(
            f"model name {model!r} is invalid: use letters, digits, '.', '_' and '-'"
            " (at most 128, starting with a letter or digit)"
        )
    if not isinstance(entry, dict):
        raise RouteTableError(f"model '{model}': expected a mapping with 'backend' and 'version'")
    for key in ("backend", "version"):
        if key not in entry:
            raise RouteTableError(f"model '{model}': '{key}' is required")
    return Route(model, _backend_url(model, entry["backend"]), _version(model, entry["version"]))


def parse_route_table(text: str | bytes, *, json: bool = False) -> RouteTable:
    """Parse and validate a route table document (YAML, or JSON when ``json``).

    Raises:
        RouteTableError: the document is not a valid route table; the message says why.
    """
    try:
        document = orjson.loads(text) if json else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if json else "YAML"
        raise RouteTableError(f"not valid {kind}: {exc}") from None
    if not isinstance(document, dict) or "models" not in document:
        raise RouteTableError("expected a mapping with a 'models' key")
    models = document["models"]
    if models is None:  # `models:` with nothing under it: no model routed yet
        return RouteTable()
    if not isinstance(models, dict):
        raise RouteTableError("'models' must map each model name to {backend, version}")
    return RouteTable({str(name): _route(name, entry) for name, entry in models.items()})


def load_route_table(path: Path) -> RouteTable:
    """Read and validate the route table file at ``path``.

    Raises:
        RouteTableError: the file is missing, unreadable or invalid; the message names it.
    """
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise RouteTableError(f"route table {path}: file not found") from None
    except OSError as exc:
        raise RouteTableError(f"route table {path}: cannot read: {exc.strerror}") from None
    try:
        return parse_route_table(text, json=path.suffix.lower() == ".json")
    except RouteTableError as exc:
        raise RouteTableError(f"route table {path}: {exc}") from None


_Signature = tuple[int, int, int] | None


def _signature(path: Path) -> _Signature:
    # mtime alone can miss two writes within the filesystem's timestamp granularity;
    # size and inode (an atomic rename makes a new one) catch most of those.
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class RouteTableWatcher:
    """Holds the route table in force and reloads it when its file changes."""

    def __init__(self, path: Path, *, metrics: GatewayMetrics, poll_s: float = 1.0) -> None:
        self.path = path
        self.poll_s = poll_s
        self._metrics = metrics
        self._table: RouteTable | None = None
        self._seen: _Signature = None

    @property
    def table(self) -> RouteTable | None:
        """The table in force, or None before the first successful load."""
        return self._table

    def require_table(self) -> RouteTable:
        """The table in force.

        Raises:
            ServiceUnavailable: no route table has been loaded yet (503).
        """
        table = self._table
        if table is None:
            raise ServiceUnavailable(f"the gateway has not loaded its route table {self.path} yet")
        return table

    def not_ready_reason(self) -> str | None:
        """Readiness: None once a route table is loaded."""
        return None if self._table is not None else f"route table {self.path} not loaded"

    def load(self) -> RouteTable:
        """Load the file now and put it in force.

        Raises:
            RouteTableError: the file is missing or invalid (the table in force is kept).
        """
        self._seen = _signature(self.path)
        try:
            table = load_route_table(self.path)
        except RouteTableError:
            self._metrics.reloaded(ok=False)
            raise
        self._table = table
        self._metrics.reloaded(ok=True, models=len(table))
        return table

    def reload_if_changed(self) -> bool:
        """Reload when the file changed since the last look; True if a new table is in force.

        A broken file is logged and counted once per change, and the last good table stays.
        """
        signature = _signature(self.path)
        if signature == self._seen:
            return False
        try:
            table = self.load()
        except RouteTableError as exc:
            _log.error("keeping the last good route table: %s", exc)
            return False
        _log.info("route table reloaded: %d models", len(table), extra={"models": table.models})
        return True

    async def watch(self) -> None:
        """Poll the file every ``poll_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                self.reload_if_changed()
            except Exception:  # the watcher must outlive any surprise; the table stays
                _log.exception("route table watcher failed; will retry")
