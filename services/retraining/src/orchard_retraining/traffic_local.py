"""The local :class:`TrafficBackend`: every version served by one embedded inference runtime.

The runtime keeps each loaded version of a name side by side (its repository maps name →
version → model) and answers each at ``/v2/models/{m}/versions/{v}/infer``, so serving a
candidate is one OIP repository-extension call and every version's target URL is the
runtime's own:

- ``deploy`` → ``POST {runtime}/v2/repository/models/{m}/load`` with
  ``{"parameters": {"uri": "models:/{m}/{v}"}}``; the runtime answers once the version is
  loaded (200) or failed (503 with the reason);
- ``url`` → the runtime URL when ``GET /v2/models/{m}/versions/{v}/ready`` is 200;
- ``retire`` → ``POST .../unload`` with ``{"parameters": {"version": v}}`` (404: already gone).

Why the standard library's ``urllib``: the protocol is blocking (the controller calls it
through ``asyncio.to_thread``), aiohttp has no synchronous client, and neither httpx nor
requests is a dependency of this package; three small JSON calls need nothing more. Proxies
are bypassed: the runtime is this machine's or this cluster's, never behind an HTTP proxy.

Loading the runtime's current version by name: a load makes the new version the one that
unversioned requests get; the gateway always addresses versions explicitly, so routing is
unaffected.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from typing import Final
from urllib.parse import quote

import orjson

from orchard_core.errors import ServiceUnavailable

__all__ = ["LocalTrafficBackend", "RuntimeUnavailable"]

_log = logging.getLogger("orchard.retraining.traffic")
_MAX_ERROR: Final = 500


class RuntimeUnavailable(ServiceUnavailable):
    """The runtime could not be reached, or refused to serve the version (503)."""


class LocalTrafficBackend:
    """Loads and unloads versions in the inference runtime at ``runtime_url``.

    Args:
        runtime_url: the runtime's base URL (``http://127.0.0.1:8080``).
        load_timeout_s: how long one load may take (downloading and deserializing a model).
        timeout_s: how long readiness checks and unloads may take.
    """

    def __init__(
        self, runtime_url: str, *, load_timeout_s: float = 300.0, timeout_s: float = 5.0
    ) -> None:
        self.runtime_url = runtime_url.rstrip("/")
        self._load_timeout_s = load_timeout_s
        self._timeout_s = timeout_s
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def deploy(self, model: str, version: str, storage_uri: str, model_format: str) -> str:
        """Load ``version`` into the runtime from ``storage_uri``; return the runtime URL.

        ``model_format`` is not needed: the runtime reads the flavor from the model itself.

        Raises:
            RuntimeUnavailable: the runtime is unreachable or could not load the version.
        """
        body = {"parameters": {"uri": storage_uri}}
        status, text = self._post(f"{_model_path(model)}/load", body, self._load_timeout_s)
        if status != 200:
            raise RuntimeUnavailable(
                f"the runtime at {self.runtime_url} could not load {model} version {version} "
                f"from {storage_uri} (HTTP {status}): {text}"
            )
        _log.info("loaded %s version %s into the runtime at %s", model, version, self.runtime_url)
        return self.runtime_url

    def retire(self, model: str, version: str) -> None:
        """Unload ``version``; one the runtime does not have is fine.

        Raises:
            RuntimeUnavailable: the runtime is unreachable or failed.
        """
        body = {"parameters": {"version": version}}
        status, text = self._post(f"{_model_path(model)}/unload", body, self._timeout_s)
        if status not in (200, 404):
            raise RuntimeUnavailable(
                f"the runtime at {self.runtime_url} could not unload {model} version {version} "
                f"(HTTP {status}): {text}"
            )

    def url(self, model: str, version: str) -> str | None:
        """The runtime URL when it has ``version`` ready, else ``None`` (also when down)."""
        path = f"/v2/models/{quote(model, safe='')}/versions/{quote(version, safe='')}/ready"
        request = urllib.request.Request(self.runtime_url + path, method="GET")  # noqa: S310
        try:
            with self._opener.open(request, timeout=self._timeout_s) as reply:
                return self.runtime_url if reply.status == 200 else None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _post(self, path: str, body: object, timeout_s: float) -> tuple[int, str]:
        request = urllib.request.Request(  # noqa: S310 - an http(s) URL from settings
            self.runtime_url + path,
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=timeout_s) as reply:
                return reply.status, ""
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, _error_text(exc.read(_MAX_ERROR * 4))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise RuntimeUnavailable(
                f"the runtime at {self.runtime_url} is unreachable: {reason}"
            ) from exc


def _model_path(model: str) -> str:
    return f"/v2/repository/models/{quote(model, safe='')}"


def _error_text(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace").strip()[:_MAX_ERROR]
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])[:_MAX_ERROR]
    return body.decode(errors="replace").strip()[:_MAX_ERROR]
