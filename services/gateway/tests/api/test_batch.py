"""POST /v1/models/{m}/batch through the gateway, against a stand-in backend on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from orchard_core.oip import decode_infer_request

from ..conftest import Gateway, MakeGateway
from ..factories import routes_to, write_routes
from ..fake_backend import Canned, FakeBackend

BATCH = "/v1/models/credit-risk/batch"


def rows(n: int) -> list[dict[str, Any]]:
    return [{"age": 20 + i, "income": 1000.0 * i, "purpose": f"p{i}"} for i in range(n)]


async def test_rows_come_back_in_order_from_chunks_of_the_asked_size(
    gateway: Gateway, backend: FakeBackend
) -> None:
    backend.echo = True
    reply = await gateway.client.post(
        BATCH, json={"rows": rows(7), "chunk_size": 3}, headers={"X-Request-Id": "batch-1"}
    )
    assert reply.status_code == 200
    answer = reply.json()
    assert (answer["model"], answer["rows"], answer["succeeded"], answer["failed"]) == (
        "credit-risk",
        7,
        7,
        0,
    )
    # Each row's outputs are its own: the backend echoes the first input (age).
    assert [r["echo"] for r in answer["results"]] == [20 + i for i in range(7)]
    assert all(r["score"] == 0.5 for r in answer["results"])
    assert [(c["index"], c["start"], c["end"], c["status"]) for c in answer["chunks"]] == [
        (0, 0, 3, 200),
        (1, 3, 6, 200),
        (2, 6, 7, 200),
    ]
    assert {c["version"] for c in answer["chunks"]} == {"1"}
    sent = {
        decode_infer_request(s.body).id: decode_infer_request(s.body).inputs[0].shape
        for s in backend.seen
    }
    assert sent == {"batch-1-c0": (3,), "batch-1-c1": (3,), "batch-1-c2": (1,)}
    assert {s.path for s in backend.seen} == {"/v2/models/credit-risk/versions/1/infer"}
    assert (
        gateway.metric("orchard_gateway_batch_rows_total", model="credit-risk", outcome="ok") == 7
    )


async def test_a_numeric_column_has_one_datatype_across_chunks(
    gateway: Gateway, backend: FakeBackend
) -> None:
    body = {"rows": [{"x": 1}, {"x": 2}, {"x": 2.5}], "chunk_size": 2}
    assert (await gateway.client.post(BATCH, json=body)).status_code == 200
    sent = [decode_infer_request(s.body).inputs[0] for s in backend.seen]
    assert {(t.datatype, len(t.data)) for t in sent} == {("FP64", 2), ("FP64", 1)}


async def test_chunk_size_defaults_to_the_gateway_setting(
    make_gateway: MakeGateway, backend: FakeBackend
) -> None:
    async with make_gateway(batch_chunk_size=4) as gateway:
        reply = await gateway.client.post(BATCH, json={"rows": rows(10)})
        assert reply.status_code == 200
        assert len(reply.json()["chunks"]) == 3
        assert sorted(len(decode_infer_request(s.body).inputs[0].data) for s in backend.seen) == [
            2,
            4,
            4,
        ]
        too_big = await gateway.client.post(BATCH, json={"rows": rows(2), "chunk_size": 5})
        assert too_big.status_code == 400
        assert "ORCHARD_GATEWAY_BATCH_CHUNK_SIZE" in too_big.json()["error"]


async def test_a_failing_chunk_is_reported_and_the_others_succeed(
    gateway: Gateway, backend: FakeBackend
) -> None:
    backend.fail_infer[1] = Canned(500, b'{"error": "model exploded"}')
    reply = await gateway.client.post(BATCH, json={"rows": rows(6), "chunk_size": 2})
    assert reply.status_code == 200
    answer = reply.json()
    assert (answer["succeeded"], answer["failed"]) == (4, 2)
    [failed] = [c for c in answer["chunks"] if "error" in c]
    assert failed["status"] == 500
    assert failed["error"] == "backend answered 500: model exploded"
    for index, result in enumerate(answer["results"]):
        failed_row = failed["start"] <= index < failed["end"]
        assert (result is None) == failed_row
    assert (
        gateway.metric("orchard_gateway_batch_rows_total", model="credit-risk", outcome="error")
        == 2
    )


async def test_backend_refusing_every_chunk_is_a_200_with_every_row_failed(
    gateway: Gateway, backend: FakeBackend
) -> None:
    backend.canned["/v2/models/credit-risk/versions/1/infer"] = Canned(
        400, b'{"error": "input \'purpose\': unknown category"}'
    )
    reply = await gateway.client.post(BATCH, json={"rows": rows(3), "chunk_size": 2})
    answer = reply.json()
    assert (reply.status_code, answer["failed"], answer["results"]) == (200, 3, [None] * 3)
    assert {c["error"] for c in answer["chunks"]} == {
        "backend answered 400: input 'purpose': unknown category"
    }


async def test_an_unreachable_backend_is_reported_per_chunk(
    make_gateway: MakeGateway, routes_file: Path, refused_url: str
) -> None:
    write_routes(routes_file, routes_to(refused_url, "credit-risk"))
    async with make_gateway(retry_max_attempts=1) as gateway:
        reply = await gateway.client.post(BATCH, json={"rows": rows(2)})
    assert reply.status_code == 200
    [chunk] = reply.json()["chunks"]
    assert chunk["status"] == 502
    assert chunk["error"]


async def test_too_many_rows_is_a_413_naming_the_setting(
    make_gateway: MakeGateway, backend: FakeBackend
) -> None:
    async with make_gateway(batch_max_rows=5) as gateway:
        reply = await gateway.client.post(BATCH, json={"rows": rows(6)})
    assert reply.status_code == 413
    assert "ORCHARD_GATEWAY_BATCH_MAX_ROWS" in reply.json()["error"]
    assert backend.seen == []


async def test_a_body_over_the_limit_is_a_413(
    make_gateway: MakeGateway, backend: FakeBackend
) -> None:
    async with make_gateway(max_body_bytes=100) as gateway:
        reply = await gateway.client.post(BATCH, json={"rows": rows(20)})
    assert reply.status_code == 413
    assert "ORCHARD_GATEWAY_MAX_BODY_BYTES" in reply.json()["error"]


async def test_bad_bodies_are_400s_that_say_what_is_wrong(
    gateway: Gateway, backend: FakeBackend
) -> None:
    cases: list[tuple[bytes, str]] = [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", '{"rows": [{column: value}, ...]}'),
        (orjson.dumps({"rows": []}), "at least one row"),
        (orjson.dumps({"rows": [{"a": 1}], "extra": 1}), "unknown fields ['extra']"),
        (orjson.dumps({"rows": [{"a": 1}, {"a": "x"}]}), "rows[1], column 'a'"),
        (orjson.dumps({"rows": [{"a": 1}, {"b": 1}]}), "rows[1]: columns differ"),
        (orjson.dumps({"rows": [{"a": 1}], "chunk_size": "2"}), "'chunk_size'"),
    ]
    for body, message in cases:
        reply = await gateway.client.post(BATCH, content=body)
        assert reply.status_code == 400, body
        assert message in reply.json()["error"], (body, reply.json())
    assert backend.seen == []


async def test_an_unknown_model_is_a_404_before_anything_is_sent(
    gateway: Gateway, backend: FakeBackend
) -> None:
    reply = await gateway.client.post("/v1/models/nope/batch", json={"rows": rows(2)})
    assert reply.status_code == 404
    assert "nope" in reply.json()["error"]
    assert backend.seen == []
