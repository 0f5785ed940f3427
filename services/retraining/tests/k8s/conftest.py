"""Fixtures for the Kubernetes backends: typed-model validation and a recorded API contract.

- ``kserve_typed(data, "V1beta1InferenceService")``: deserialises a manifest into the KServe
  SDK's typed models. The SDK's own ``ApiClient.deserialize`` resolves type names only in
  ``kserve.models`` (it fails on the nested ``V1ObjectMeta``) and silently drops unknown keys,
  so this walks the SDK models' ``openapi_types``/``attribute_map`` itself, hands nested
  Kubernetes types to the ``kubernetes`` client's (pydantic, ``extra="forbid"``) models, and
  rejects any key the schema does not know.
- ``api_server``: a fake API server behind the real generated ``kubernetes`` API classes. It
  replaces the ``ApiClient``'s REST transport, records every request (method, path, query,
  body as sent) and replays canned responses shaped like the API server's own JSON.
- ``api_client``: an ``ApiClient`` wired to ``api_server``.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import kserve.models
import pytest
import urllib3
from kubernetes.client import ApiClient, Configuration
from kubernetes.client import models as k8s_models
from kubernetes.client.rest import RESTResponse

_PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
}


def _typed(value: Any, type_name: str, path: str) -> Any:
    if value is None:
        return None
    if match := re.fullmatch(r"list\[(.+)\]", type_name):
        assert isinstance(value, list), f"{path}: expected a list"
        return [_typed(v, match.group(1), f"{path}[{i}]") for i, v in enumerate(value)]
    if match := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        assert isinstance(value, dict), f"{path}: expected an object"
        return {k: _typed(v, match.group(1), f"{path}.{k}") for k, v in value.items()}
    if type_name in _PRIMITIVES:
        assert isinstance(value, _PRIMITIVES[type_name]), f"{path}: expected {type_name}"
        return value
    if type_name == "object":
        return value
    klass = getattr(kserve.models, type_name, None)
    if klass is not None:
        assert isinstance(value, dict), f"{path}: expected an object for {type_name}"
        by_key = {key: attr for attr, key in klass.attribute_map.items()}
        unknown = set(value) - set(by_key)
        assert not unknown, f"{path}: {type_name} has no field(s) {sorted(unknown)}"
        kwargs = {
            by_key[key]: _typed(v, klass.openapi_types[by_key[key]], f"{path}.{key}")
            for key, v in value.items()
        }
        return klass(**kwargs)
    # Nested Kubernetes types (V1ObjectMeta, V1ResourceRequirements, V1Toleration, ...).
    return getattr(k8s_models, type_name).model_validate(value)


@pytest.fixture
def kserve_typed() -> Any:
    """``(data, type_name) -> typed KServe SDK object``; fails on unknown or mistyped fields."""
    return lambda data, type_name: _typed(data, type_name, "$")


@pytest.fixture
def kserve_dict() -> Any:
    """``typed object -> dict`` as the KServe SDK serialises it for the API server."""
    client = kserve.ApiClient()
    return client.sanitize_for_serialization


@dataclass(frozen=True)
class Call:
    """One request as it left the client."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


class FakeApiServer:
    """Records requests; answers each with the next canned response, in order."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._responses: deque[tuple[int, str, bytes, str]] = deque()

    def reply(self, status: int, body: Any = None, *, reason: str = "OK") -> None:
        """Queue a JSON response (a ``str`` body is sent as ``text/plain``)."""
        if isinstance(body, str):
            self._responses.append((status, reason, body.encode(), "text/plain"))
        else:
            self._responses.append((status, reason, json.dumps(body).encode(), "application/json"))

    def fail(self, code: int, reason: str, message: str, **details: str) -> None:
        """Queue an error as the API server sends it: a ``v1`` ``Status`` object."""
        self.reply(
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "details": details,
                "code": code,
            },
            reason=reason,
        )

    def request(
        self,
        method: str,
        url: str,
        headers: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> RESTResponse:
        parts = urlsplit(url)
        self.calls.append(Call(method, parts.path, dict(parse_qsl(parts.query)), body))
        assert self._responses, f"unexpected request {method} {parts.path}"
        status, reason, data, content_type = self._responses.popleft()
        response = urllib3.HTTPResponse(
            body=data,
            status=status,
            reason=reason,
            headers={"Content-Type": content_type},
            preload_content=True,
        )
        return RESTResponse(response)

    @property
    def pending(self) -> int:
        """Canned responses not yet used."""
        return len(self._responses)


@pytest.fixture
def api_server() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    assert server.pending == 0, "canned responses left unused"


@pytest.fixture
def api_client(api_server: FakeApiServer) -> Iterator[ApiClient]:
    client = ApiClient(Configuration(host="https://kubernetes.test"))
    real_transport = client.rest_client
    client.rest_client = api_server
    yield client
    client.rest_client = real_transport
    client.close()


def sdk_defaults(typed_dict: Any, manifest: Any, path: str = "$") -> dict[str, Any]:
    """Keys the SDK's serialisation adds on top of ``manifest`` (its model defaults), after
    checking that every value of ``manifest`` survived the round trip unchanged."""
    if isinstance(manifest, dict):
        assert isinstance(typed_dict, dict), path
        extra = {f"{path}.{k}": v for k, v in typed_dict.items() if k not in manifest}
        for key, value in manifest.items():
            assert key in typed_dict, f"{path}.{key} was dropped"
            extra |= sdk_defaults(typed_dict[key], value, f"{path}.{key}")
        return extra
    if isinstance(manifest, list):
        assert isinstance(typed_dict, list), path
        assert len(typed_dict) == len(manifest), path
        extra = {}
        for i, (a, b) in enumerate(zip(typed_dict, manifest, strict=True)):
            extra |= sdk_defaults(a, b, f"{path}[{i}]")
        return extra
    assert typed_dict == manifest, f"{path}: {typed_dict!r} != {manifest!r}"
    return {}


@pytest.fixture
def round_trip_extras() -> Any:
    """``(typed_dict, manifest) -> {path: value}`` of SDK-added defaults; fails on any loss."""
    return sdk_defaults
