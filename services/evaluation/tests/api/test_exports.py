"""GET /v1/exports/{model}: labeled production data, streamed as JSONL or Parquet."""

from __future__ import annotations

import io

import orjson
import pyarrow.parquet as pq

from ..conftest import Evaluation
from ..factories import event, label


async def _seed(evaluation: Evaluation) -> None:
    events = [
        event("a", ts=1_000.0, inputs={"age": [30], "city": ["x"]}, outputs={"p": [0.2]}),
        event("b", ts=1_010.0, inputs={"age": [40], "city": ["y"]}, outputs={"p": [0.9]}),
        # A two-row request labeled with a list, and class probabilities per row.
        event(
            "batch",
            ts=1_020.0,
            inputs={"age": [50, 60], "city": ["x", "z"]},
            outputs={"proba": [0.1, 0.9, 0.7, 0.3]},
        ),
        event("unlabeled", ts=1_030.0),
        event("other-version", ts=1_040.0, version="2"),
        event("failed", ts=1_050.0, status=500, outputs={}),
        event("a", ts=1_000.0, shadow=True, version="9"),
    ]
    await evaluation.client.post("/v1/events", json=events)
    feedback = [
        label("a", 0),
        label("b", 1, value=3.5),
        label("batch", [1, 0]),
        label("other-version", 1),
        label("failed", 1),
    ]
    await evaluation.client.post("/v1/feedback", json=feedback)


async def test_jsonl_holds_one_labeled_row_per_prediction_row(evaluation: Evaluation) -> None:
    await _seed(evaluation)
    response = await evaluation.client.get(
        "/v1/exports/credit-risk", params={"version": "1", "since": 1_000, "until": 1_100}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    rows = [orjson.loads(line) for line in response.content.splitlines()]
    assert [(r["request_id"], r["age"], r["label"]) for r in rows] == [
        ("a", 30, 0),
        ("b", 40, 1),
        ("batch", 50, 1),
        ("batch", 60, 0),
    ]
    assert rows[1]["value"] == 3.5
    assert rows[2]["proba"] == [0.1, 0.9]
    assert rows[3]["proba"] == [0.7, 0.3]


async def test_unlabeled_rows_come_too_when_asked_and_windows_cut(evaluation: Evaluation) -> None:
    await _seed(evaluation)
    response = await evaluation.client.get(
        "/v1/exports/credit-risk",
        params={"labeled_only": "false", "since": 1_010, "until": 1_031},
    )
    ids = [orjson.loads(line)["request_id"] for line in response.content.splitlines()]
    assert ids == ["b", "batch", "batch", "unlabeled"]  # no shadow, no failed prediction


async def test_parquet_has_the_same_rows(evaluation: Evaluation) -> None:
    await _seed(evaluation)
    response = await evaluation.client.get(
        "/v1/exports/credit-risk", params={"version": "1", "format": "parquet"}
    )
    assert response.status_code == 200
    table = pq.read_table(io.BytesIO(response.content))
    assert table.column("request_id").to_pylist() == ["a", "b", "batch", "batch"]
    assert table.column("label").to_pylist() == [0, 1, 1, 0]


async def test_an_empty_export_is_still_a_valid_file(evaluation: Evaluation) -> None:
    jsonl = await evaluation.client.get("/v1/exports/nobody")
    assert (jsonl.status_code, jsonl.content) == (200, b"")
    parquet = await evaluation.client.get("/v1/exports/nobody", params={"format": "parquet"})
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 0


async def test_bad_export_parameters_are_4xx(evaluation: Evaluation) -> None:
    assert (
        await evaluation.client.get("/v1/exports/m", params={"format": "csv"})
    ).status_code == 400
    backwards = await evaluation.client.get("/v1/exports/m", params={"since": 10, "until": 5})
    assert backwards.status_code == 400
    assert "after 'since'" in backwards.json()["error"]


async def test_a_version_of_any_characters_gets_a_safe_file_name(evaluation: Evaluation) -> None:
    # Found by the property tests: a header cannot carry this name as it is (it was a 500).
    response = await evaluation.client.get("/v1/exports/m", params={"version": 'Ā"x'})
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="m-__x.jsonl"'
