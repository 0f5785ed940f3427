"""Where the route table comes from, and the watcher that keeps the one in force current.

Two sources: a file (local dev; ``orchard up`` writes it) and retraining's
``GET /v1/routes`` (a cluster), polled with ``If-None-Match`` so an unchanged table costs a
304. Whatever the source, a new table is put in force with one assignment, and when the
source fails or serves an invalid table the last good table stays in force; each failure is
logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Final, Protocol

import aiohttp

from orchard_core.errors import ServiceUnavailable
from orchard_gateway.metrics import GatewayMetrics
from orchard_gateway.routes_table import RouteTable, RouteTableError, parse_route_table

__all__ = [
    "FileRouteSource",
    "HttpRouteSource",
    "RouteSource",
    "RouteTableWatcher",
    "load_route_table",
]

_log = logging.getLogger("orchard.gateway.routes")
_MAX_TABLE_BYTES: Final = 4 * 1024 * 1024


class RouteSource(Protocol):
    """Somewhere a route table can be fetched from."""

    description: str

    async def fetch(self) -> RouteTable | None:
        """The table, or None when it has not changed since the last fetch.

        Raises:
            RouteTableError: the source failed or holds an invalid table.
        """
        ...


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


class FileRouteSource:
    """A YAML or JSON file, re-read when its mtime, size or inode change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"route table {path}"
        self._seen: _Signature = None
        self._loaded = False

    async def fetch(self) -> RouteTable | None:
        signature = _signature(self.path)
        if self._loaded and signature == self._seen:
            return None
        # Remembered before reading: a broken file is reported once per change, not per poll.
        self._seen, self._loaded = signature, True
        return load_route_table(self.path)


class HttpRouteSource:
    """Retraining's ``GET /v1/routes`` (JSON), polled with ``If-None-Match``."""

    def __init__(self, url: str, session: aiohttp.ClientSession, *, timeout_s: float = 5.0) -> None:
        self.url = url
        self.description = f"route table at {url}"
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._etag: str | None = None

    async def fetch(self) -> RouteTable | None:
        headers = {"Accept": "application/json"}
        if self._etag is not None:
            headers["If-None-Match"] = self._etag
        try:
            async with self._session.get(self.url, headers=headers, timeout=self._timeout) as reply:
                if reply.status == 304:
                    return None
                body = await reply.content.read(_MAX_TABLE_BYTES + 1)
                if reply.status != 200:
                    detail = body[:200].decode(errors="replace")
                    raise RouteTableError(f"{self.url} answered HTTP {reply.status}: {detail}")
                etag = reply.headers.get("ETag")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RouteTableError(
                f"{self.url} is unreachable: {str(exc) or type(exc).__name__}"
            ) from None
        if len(body) > _MAX_TABLE_BYTES:
            raise RouteTableError(f"{self.url}: the table is larger than {_MAX_TABLE_BYTES} bytes")
        try:
            table = parse_route_table(body, json=True)
        except RouteTableError as exc:
            raise RouteTableError(f"{self.url}: {exc}") from None
        # Only a table that parsed is remembered: an invalid one is fetched again next time.
        self._etag = etag
        return table


class RouteTableWatcher:
    """Holds the route table in force and refreshes it from its source."""

    def __init__(
        self, source: RouteSource, *, metrics: GatewayMetrics, poll_s: float = 1.0
    ) -> None:
        self.source = source
        self.poll_s = poll_s
        self._metrics = metrics
        self._table: RouteTable | None = None

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
            raise ServiceUnavailable(
                f"the gateway has not loaded its {self.source.description} yet"
            )
        return table

    def not_ready_reason(self) -> str | None:
        """Readiness: None once a route table is loaded."""
        return None if self._table is not None else f"{self.source.description} not loaded"

    async def refresh(self) -> bool:
        """Fetch from the source; True when a new table was put in force.

        Raises:
            RouteTableError: the source failed or is invalid (counted; the table stays).
        """
        try:
            table = await self.source.fetch()
        except RouteTableError:
            self._metrics.reloaded(ok=False)
            raise
        if table is None:  # unchanged: the source is fine, the table in force is current
            self._metrics.route_table_loaded_at.set_to_current_time()
            return False
        self._table = table
        self._metrics.reloaded(ok=True, models=len(table))
        return True

    async def refresh_or_keep(self) -> bool:
        """:meth:`refresh`, logging a failure instead of raising; the last good table stays."""
        try:
            changed = await self.refresh()
        except RouteTableError as exc:
            if self._table is None:
                _log.error("no route table yet: %s", exc)
            else:
                _log.error("keeping the last good route table: %s", exc)
            return False
        if changed and self._table is not None:
            _log.info(
                "route table loaded: %d models",
                len(self._table),
                extra={"models": self._table.models},
            )
        return changed

    async def watch(self) -> None:
        """Refresh every ``poll_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.refresh_or_keep()
            except Exception:  # the watcher must outlive any surprise; the table stays
                _log.exception("route table watcher failed; will retry")
