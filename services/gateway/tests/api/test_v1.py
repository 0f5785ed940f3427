"""KServe v1 through the gateway, against a stand-in backend on loopback."""

from __future__ import annotations

import orjson
import pytest

from ..conftest import Gateway
from ..fake_backend import FakeBackend


async def test_predict_is_forwarded(gateway: Gateway, backend: FakeBackend) -> None:
    body = b'{"instances": [[1, 2, 3], [4, 5, 6]]}'
    reply = await gateway.client.post(
        "/v1/models/digits:predict", content=body, headers={"X-Request-Id": "v1-req"}
    )
    assert reply.status_code == 200
    assert reply.json() == {"predictions": [0, 0]}
    assert reply.headers["x-orchard-model-version"] == "1"
    [seen] = backend.seen
    assert (seen.method, seen.path, seen.body) == ("POST", "/v1/models/digits:predict", body)
    assert seen.headers["X-Request-Id"] == "v1-req"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "request body is empty"),
        (b"{", "not valid JSON"),
        (b'{"instances": []}', "'instances' is required"),
        (b'{"inputs": [1]}', "'instances' is required"),
    ],
)
async def test_bad_predict_bodies_are_refused_by_the_gateway(
    gateway: Gateway, backend: FakeBackend, body: bytes, message: str
) -> None:
    reply = await gateway.client.post("/v1/models/digits:predict", content=body)
    assert reply.status_code == 400
    assert message in reply.json()["error"]
    assert backend.seen == []


async def test_predict_on_an_unknown_model_is_a_404(gateway: Gateway, backend: FakeBackend) -> None:
    reply = await gateway.client.post(
        "/v1/models/nope:predict", content=orjson.dumps({"instances": [1]})
    )
    assert reply.status_code == 404
    assert "model 'nope' is not routed" in reply.json()["error"]
    assert backend.seen == []


async def test_list_and_status(gateway: Gateway, backend: FakeBackend) -> None:
    assert (await gateway.client.get("/v1/models")).json() == {"models": ["credit-risk", "digits"]}
    status = await gateway.client.get("/v1/models/digits")
    assert status.status_code == 200
    assert backend.seen[0].path == "/v1/models/digits"
