"""POST /v1/feedback: checked, answered 202, queued and forwarded to evaluation in batches."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchard_gateway.api.feedback import MAX_ITEMS
from orchard_gateway.auth import hash_key

from ..conftest import MakeGateway
from ..factories import eventually
from ..fake_evaluation import WAIT_S, FakeEvaluation

FEEDBACK = "/v1/feedback"
JSON = {"Content-Type": "application/json"}
PEPPER = "feedback-pepper"
SECRET = "feedback-secret-0123456789"


@pytest.fixture
def forwarding(evaluation: FakeEvaluation) -> dict[str, Any]:
    """Settings that forward feedback to the stand-in evaluation at once."""
    return {"evaluation_url": evaluation.url, "events_flush_interval_s": 0.02}


def sent(gateway: Any) -> float:
    value: float = gateway.metric("orchard_gateway_feedback_total", outcome="sent")
    return value


@pytest.mark.parametrize(
    "body",
    [
        {"request_id": "r1", "label": 1},
        [{"request_id": "r1", "label": 1}],
        {"items": [{"request_id": "r1", "label": 1}]},
    ],
    ids=["one-object", "list", "items-wrapper"],
)
async def test_one_item_a_list_or_an_items_object_is_accepted(
    make_gateway: MakeGateway,
    evaluation: FakeEvaluation,
    forwarding: dict[str, Any],
    body: Any,
) -> None:
    before = time.time()
    async with make_gateway(**forwarding) as gateway:
        reply = await gateway.client.post(FEEDBACK, content=orjson.dumps(body), headers=JSON)
        assert reply.status_code == 202
        assert reply.json() == {"accepted": 1}
        await evaluation.wait_until(lambda: len(evaluation.feedback) == 1)
    (item,) = evaluation.feedback
    assert item["request_id"] == "r1"
    assert item["label"] == 1
    assert before <= item["ts"] <= time.time()  # the receipt time, when the caller gave none
    assert evaluation.events == []  # feedback is not a prediction event


async def test_a_batch_is_forwarded_as_given(
    make_gateway: MakeGateway, evaluation: FakeEvaluation, forwarding: dict[str, Any]
) -> None:
    items = [
        {"request_id": "a", "label": "fraud", "ts": 1700000000.5},
        {"request_id": "b", "value": 12.5, "ts": 1700000001},
        {"request_id": "c", "label": [0, 1], "value": True, "ts": 1700000002},
    ]
    async with make_gateway(**forwarding, events_batch_size=2) as gateway:
        reply = await gateway.client.post(FEEDBACK, json=items)
        assert reply.status_code == 202
        assert reply.json() == {"accepted": 3}
        await eventually(lambda: sent(gateway) == 3, "3 feedback items counted sent")
    assert evaluation.feedback == items
    assert all(len(batch) <= 2 for batch in evaluation.feedback_batches)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "no feedback items"),
        (b'{"items": {"request_id": "a"}}', '{"items": [...]} must hold a list'),
        (b'[{"request_id": "a", "label": 1}, 7]', "feedback item 1: must be an object"),
        (b'[{"label": 1}]', "feedback item 0: request_id must be a non-empty string"),
        (b'[{"request_id": "", "label": 1}]', "request_id must be a non-empty string"),
        (b'[{"request_id": 5, "label": 1}]', "request_id must be a non-empty string"),
        (orjson.dumps([{"request_id": "x" * 257, "label": 1}]), "at most 256 characters"),
        (
            b'[{"request_id": "a", "label": 1}, {"request_id": "b", "label": 0},'
            b' {"request_id": "c"}]',
            "feedback item 2: give a label, a value or both",
        ),
        (b'{"request_id": "a", "label": null, "value": null}', "give a label, a value"),
        (b'{"request_id": "a", "label": 1, "ts": "yesterday"}', "ts must be a number"),
        (b'{"request_id": "a", "label": 1, "ts": true}', "ts must be a number"),
        (b'{"request_id": "a", "value": "lots"}', "value must be a number or a boolean"),
        (b'{"request_id": "a", "lable": 1}', "unknown field(s) 'lable'"),
    ],
)
async def test_bad_feedback_is_a_400_naming_the_item(
    make_gateway: MakeGateway,
    evaluation: FakeEvaluation,
    forwarding: dict[str, Any],
    body: bytes,
    message: str,
) -> None:
    async with make_gateway(**forwarding) as gateway:
        reply = await gateway.client.post(FEEDBACK, content=body, headers=JSON)
        assert reply.status_code == 400
        assert message in reply.json()["error"]
        assert gateway.metric("orchard_gateway_feedback_queue_depth") == 0
    assert evaluation.feedback == []  # nothing of a refused body is forwarded


async def test_too_many_items_or_bytes_is_a_413(
    make_gateway: MakeGateway, forwarding: dict[str, Any]
) -> None:
    items = [{"request_id": f"r{i}", "label": 1} for i in range(MAX_ITEMS + 1)]
    async with make_gateway(**forwarding) as gateway:
        reply = await gateway.client.post(FEEDBACK, json=items)
        assert reply.status_code == 413
        assert f"at most {MAX_ITEMS}" in reply.json()["error"]
    async with make_gateway(**forwarding, max_body_bytes=64) as gateway:
        reply = await gateway.client.post(FEEDBACK, json=items[:5])
        assert reply.status_code == 413
        assert "ORCHARD_GATEWAY_MAX_BODY_BYTES" in reply.json()["error"]


async def test_without_an_evaluation_url_feedback_is_a_503(make_gateway: MakeGateway) -> None:
    off = "feedback forwarding is off: set ORCHARD_GATEWAY_EVALUATION_URL"
    async with make_gateway(max_body_bytes=64) as gateway:
        assert gateway.app.state.feedback_sink is None
        reply = await gateway.client.post(FEEDBACK, json={"request_id": "a", "label": 1})
        assert reply.status_code == 503
        assert reply.json()["error"] == off
        # Said before the body is read: no point sending it again, whatever it holds.
        huge = await gateway.client.post(FEEDBACK, content=b"x" * 1000, headers=JSON)
        assert huge.status_code == 503
        assert huge.json()["error"] == off


async def test_the_openapi_document_describes_the_body(make_gateway: MakeGateway) -> None:
    async with make_gateway() as gateway:
        spec = (await gateway.client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/feedback"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert len(schema["oneOf"]) == 3
    assert "202" in operation["responses"]


async def test_a_full_queue_is_a_503_with_retry_after(
    make_gateway: MakeGateway, forwarding: dict[str, Any]
) -> None:
    async with make_gateway(**forwarding, events_queue_size=2) as gateway:
        items = [{"request_id": f"r{i}", "label": 1} for i in range(3)]
        reply = await gateway.client.post(FEEDBACK, json=items)
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "1"
        assert "feedback queue is full" in reply.json()["error"]
        assert gateway.metric("orchard_gateway_feedback_total", outcome="dropped") == 3
        assert (await gateway.client.post(FEEDBACK, json=items[:2])).status_code == 202


@pytest.fixture
def auth_on(tmp_path: Path) -> dict[str, Any]:
    keys: list[dict[str, Any]] = [
        {"id": "labeller", "hash": hash_key(SECRET, PEPPER), "roles": ["predict"]},
        {"id": "ops", "hash": hash_key("ops-secret-0123456789", PEPPER), "roles": ["admin"]},
    ]
    for key in keys:
        key.update(rate_per_s=1000, burst=1000)
    path = tmp_path / "keys.json"
    path.write_bytes(orjson.dumps({"keys": keys}))
    return {"auth_enabled": True, "api_keys_file": path, "api_key_pepper": PEPPER}


async def test_feedback_needs_the_predict_role_and_is_logged_with_the_key_id(
    make_gateway: MakeGateway,
    evaluation: FakeEvaluation,
    forwarding: dict[str, Any],
    auth_on: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    item = {"request_id": "a", "value": 3.5, "ts": 5.0}
    caplog.set_level(logging.INFO, logger="orchard.access")
    async with make_gateway(**forwarding, **auth_on) as gateway:
        anonymous = await gateway.client.post(FEEDBACK, json=item)
        assert anonymous.status_code == 401
        admin_only = await gateway.client.post(
            FEEDBACK, json=item, headers={"X-API-Key": "ops-secret-0123456789"}
        )
        assert admin_only.status_code == 403
        ok = await gateway.client.post(
            FEEDBACK, json=item, headers={"Authorization": f"Bearer {SECRET}"}
        )
        assert ok.status_code == 202
        await evaluation.wait_until(lambda: len(evaluation.feedback) == 1, WAIT_S)
    assert evaluation.feedback == [item]
    lines = [
        r for r in caplog.records if r.name == "orchard.access" and r.__dict__["status"] == 202
    ]
    assert len(lines) == 1
    assert lines[0].__dict__["api_key_id"] == "labeller"
    assert lines[0].__dict__["feedback_items"] == 1
