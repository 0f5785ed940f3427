"""The local traffic backend against a small fake runtime on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orchard_retraining.k8s.protocols import TrafficBackend
from orchard_retraining.traffic_local import LocalTrafficBackend, RuntimeUnavailable


class FakeRuntime:
    """Keeps versions per name like the inference runtime's repository."""

    def __init__(self) -> None:
        self.versions: dict[str, set[str]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.broken: str | None = None


def _handler(runtime: FakeRuntime) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            runtime.requests.append(("GET", self.path, None))
            parts = self.path.strip("/").split("/")  # v2 models m versions v ready
            name, version = parts[2], parts[4]
            if version in runtime.versions.get(name, set()):
                self._reply(200, {"name": name, "version": version, "ready": True})
            else:
                self._reply(404, {"error": f"model '{name}' has no version '{version}'"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            runtime.requests.append(("POST", self.path, body))
            if runtime.broken:
                self._reply(503, {"error": runtime.broken})
                return
            parts = self.path.strip("/").split("/")  # v2 repository models m load|unload
            name, verb = parts[3], parts[4]
            if verb == "load":
                version = body["parameters"]["uri"].rsplit("/", 1)[-1]
                runtime.versions.setdefault(name, set()).add(version)
                self._reply(200, {"name": name, "load": True, "version": version})
                return
            version = body["parameters"]["version"]
            if version not in runtime.versions.get(name, set()):
                self._reply(404, {"error": f"model '{name}' is not loaded here"})
                return
            runtime.versions[name].discard(version)
            self._reply(200, {"name": name, "unload": True})

    return Handler


@pytest.fixture
def runtime() -> Iterator[tuple[FakeRuntime, str]]:
    fake = FakeRuntime()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_versions_are_loaded_side_by_side_and_retired(runtime: tuple[FakeRuntime, str]) -> None:
    fake, url = runtime
    backend = LocalTrafficBackend(url + "/")
    assert isinstance(backend, TrafficBackend)
    assert backend.url("credit-risk", "4") is None
    assert backend.deploy("credit-risk", "3", "models:/credit-risk/3", "mlflow") == url
    assert backend.deploy("credit-risk", "4", "models:/credit-risk/4", "mlflow") == url
    assert fake.requests[1] == (
        "POST",
        "/v2/repository/models/credit-risk/load",
        {"parameters": {"uri": "models:/credit-risk/3"}},
    )
    assert backend.url("credit-risk", "3") == url
    assert backend.url("credit-risk", "4") == url
    assert ("GET", "/v2/models/credit-risk/versions/4/ready", None) in fake.requests

    backend.retire("credit-risk", "3")
    assert fake.requests[-1] == (
        "POST",
        "/v2/repository/models/credit-risk/unload",
        {"parameters": {"version": "3"}},
    )
    assert backend.url("credit-risk", "3") is None
    assert backend.url("credit-risk", "4") == url
    backend.retire("credit-risk", "3")  # already gone: fine


def test_failures_name_the_runtime_and_the_reason(
    runtime: tuple[FakeRuntime, str], free_port: int
) -> None:
    fake, url = runtime
    fake.broken = "model credit-risk failed to load: no such version"
    backend = LocalTrafficBackend(url)
    with pytest.raises(RuntimeUnavailable, match=r"could not load credit-risk version 9.*no such"):
        backend.deploy("credit-risk", "9", "models:/credit-risk/9", "mlflow")
    with pytest.raises(RuntimeUnavailable, match="could not unload"):
        backend.retire("credit-risk", "9")

    down = LocalTrafficBackend(f"http://127.0.0.1:{free_port}", timeout_s=1)
    with pytest.raises(RuntimeUnavailable, match="unreachable"):
        down.deploy("credit-risk", "4", "models:/credit-risk/4", "mlflow")
    assert down.url("credit-risk", "4") is None
