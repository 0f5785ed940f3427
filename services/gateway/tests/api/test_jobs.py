"""The batch job endpoints: upload, status, list, results, cancel; limits and bad input."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchard_core.oip import decode_infer_request
from orchard_gateway.auth import hash_key

from ..conftest import MakeGateway
from ..factories import eventually, routes_to, write_routes
from ..fake_backend import Canned, FakeBackend
from ..test_jobs import job, jsonl, results, submit, wait_for


def leftovers(jobs_dir: Path) -> list[Path]:
    """What is left in the jobs directory (nothing, when it was never made)."""
    return list(jobs_dir.iterdir()) if jobs_dir.exists() else []


def occupy(path: Path) -> None:
    """Put a file where a directory should be made."""
    path.write_bytes(b"not a directory")


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    return tmp_path / "jobs"


async def test_a_job_runs_to_success_and_its_results_download_as_jsonl_and_csv(
    make_gateway: MakeGateway, backend: FakeBackend, jobs_dir: Path
) -> None:
    backend.echo = True
    async with make_gateway(jobs_dir=jobs_dir, batch_chunk_size=3) as gateway:
        reply = await submit(gateway, jsonl(10))
        assert reply.status_code == 202
        accepted = reply.json()
        assert reply.headers["location"] == f"/v1/jobs/{accepted['id']}"
        assert (accepted["status"], accepted["rows"], accepted["model"]) == (
            "queued",
            10,
            "credit-risk",
        )
        done = await wait_for(gateway, accepted["id"], "succeeded")
        assert done["rows_done"] == 10
        assert (done["chunks_done"], done["chunks_total"], done["progress"]) == (4, 4, 1.0)
        assert done["failed_rows"] == 0
        assert done["started"] is not None
        assert done["finished"] is not None

        lines = await results(gateway, accepted["id"])
        assert [line["row"] for line in lines] == list(range(10))
        assert [line["echo"] for line in lines] == [20 + i for i in range(10)]

        as_csv = await gateway.client.get(f"/v1/jobs/{accepted['id']}/results?format=csv")
        assert as_csv.status_code == 200
        assert as_csv.headers["content-type"].startswith("text/csv")
        records = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert list(records[0]) == ["row", "score", "echo", "error"]
        assert [(int(r["row"]), int(r["echo"]), r["error"]) for r in records] == [
            (i, 20 + i, "") for i in range(10)
        ]
        assert gateway.metric("orchard_gateway_jobs", status="succeeded") == 1
        assert gateway.metric("orchard_gateway_jobs", status="running") == 0
        assert (
            gateway.metric("orchard_gateway_batch_rows_total", model="credit-risk", outcome="ok")
            == 10
        )
    assert backend.infer_calls == 4


async def test_a_csv_upload_with_list_outputs_flattened_on_the_way_back(
    make_gateway: MakeGateway, backend: FakeBackend, jobs_dir: Path
) -> None:
    backend.echo = True
    upload = "pixel_a,label\n1.5,x\n2.5,y\n"
    async with make_gateway(jobs_dir=jobs_dir) as gateway:
        reply = await gateway.client.post(
            "/v1/jobs?model=digits", content=upload, headers={"Content-Type": "text/csv"}
        )
        assert reply.status_code == 202
        assert reply.json()["format"] == "csv"
        await wait_for(gateway, reply.json()["id"], "succeeded")
        lines = await results(gateway, reply.json()["id"])
    assert [(line["row"], line["echo"]) for line in lines] == [(0, 1.5), (1, 2.5)]


async def test_a_numeric_csv_column_is_fp64_in_every_chunk(
    make_gateway: MakeGateway, backend: FakeBackend, jobs_dir: Path
) -> None:
    async with make_gateway(jobs_dir=jobs_dir, batch_chunk_size=2) as gateway:
        job_id = (await submit(gateway, b"income\n1\n2\n2.5\n", fmt="csv")).json()["id"]
        await wait_for(gateway, job_id, "succeeded")
    sent = [decode_infer_request(s.body).inputs[0] for s in backend.seen]
    assert [(t.datatype, t.data.tolist()) for t in sent] == [
        ("FP64", [1.0, 2.0]),
        ("FP64", [2.5]),
    ]


async def test_a_failing_chunk_makes_error_rows_and_the_job_still_succeeds(
    make_gateway: MakeGateway, backend: FakeBackend, jobs_dir: Path
) -> None:
    backend.fail_infer[1] = Canned(500, b'{"error": "model exploded"}')
    async with make_gateway(jobs_dir=jobs_dir, batch_chunk_size=2) as gateway:
        job_id = (await submit(gateway, jsonl(5))).json()["id"]
        done = await wait_for(gateway, job_id, "succeeded")
        assert done["failed_rows"] == 2
        lines = await results(gateway, job_id)
    assert [line.get("error") for line in lines] == [
        None,
        None,
        "backend answered 500: model exploded",
        "backend answered 500: model exploded",
        None,
    ]


async def test_an_unreachable_backend_is_retried_then_fails_the_job(
    make_gateway: MakeGateway, routes_file: Path, refused_url: str, jobs_dir: Path
) -> None:
    write_routes(routes_file, routes_to(refused_url, "credit-risk"))
    async with make_gateway(jobs_dir=jobs_dir, retry_max_attempts=1) as gateway:
        gateway.app.state.jobs.retry_delays_s = (0.01, 0.01)
        job_id = (await submit(gateway, jsonl(3))).json()["id"]
        failed = await wait_for(gateway, job_id, "failed")
    assert "failed 3 times, the backend unreachable" in failed["error"]
    assert failed["rows_done"] == 0


async def test_results_are_a_409_until_the_job_has_finished_and_cancel_stops_it(
    make_gateway: MakeGateway, backend: FakeBackend, jobs_dir: Path
) -> None:
    backend.stall_from = 1
    async with make_gateway(jobs_dir=jobs_dir, batch_chunk_size=2) as gateway:
        job_id = (await submit(gateway, jsonl(6))).json()["id"]

        async def second_chunk_sent() -> bool:
            return backend.infer_calls == 2 and (await job(gateway, job_id))["chunks_done"] == 1

        await eventually(second_chunk_sent, "the second chunk to be sent")
        early = await gateway.client.get(f"/v1/jobs/{job_id}/results")
        assert early.status_code == 409
        assert "running" in early.json()["error"]

        cancelled = await gateway.client.post(f"/v1/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        again = await gateway.client.post(f"/v1/jobs/{job_id}/cancel")
        assert (again.status_code, again.json()["status"]) == (200, "cancelled")
        backend.release.set()
        # The rows done before the cancel are kept and downloadable.
        assert [line["row"] for line in await results(gateway, job_id)] == [0, 1]
        assert (await job(gateway, job_id))["status"] == "cancelled"
        assert (jobs_dir / job_id / "state.json").read_bytes().count(b'"cancelled"') == 1


async def test_cancelling_a_finished_job_is_a_409(
    make_gateway: MakeGateway, backend: FakeBackend, jobs_dir: Path
) -> None:
    async with make_gateway(jobs_dir=jobs_dir) as gateway:
        job_id = (await submit(gateway, jsonl(1))).json()["id"]
        await wait_for(gateway, job_id, "succeeded")
        reply = await gateway.client.post(f"/v1/jobs/{job_id}/cancel")
    assert reply.status_code == 409
    assert "already succeeded" in reply.json()["error"]


async def test_only_max_concurrent_jobs_run_and_the_rest_wait_queued(
    make_gateway: MakeGateway, backend: FakeBackend, jobs_dir: Path
) -> None:
    backend.stall = True
    async with make_gateway(jobs_dir=jobs_dir, jobs_max_concurrent=1) as gateway:
        first = (await submit(gateway, jsonl(2))).json()["id"]
        second = (await submit(gateway, jsonl(2))).json()["id"]
        await wait_for(gateway, first, "running")
        await eventually(lambda: backend.infer_calls == 1, "the first job's chunk to be sent")
        assert (await job(gateway, second))["status"] == "queued"
        listed = (await gateway.client.get("/v1/jobs")).json()["jobs"]
        assert [j["id"] for j in listed] == [second, first]  # newest first
        assert gateway.metric("orchard_gateway_jobs", status="queued") == 1
        # A queued job can be cancelled too; it never runs.
        assert (await gateway.client.post(f"/v1/jobs/{second}/cancel")).status_code == 200
        backend.release.set()
        await wait_for(gateway, first, "succeeded")
        assert (await job(gateway, second))["status"] == "cancelled"
    assert backend.infer_calls == 1


async def _chunked(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 100):
        yield body[start : start + 100]


async def test_an_upload_over_the_limit_is_a_413_and_leaves_nothing(
    make_gateway: MakeGateway, backend: FakeBackend, jobs_dir: Path
) -> None:
    async with make_gateway(jobs_dir=jobs_dir, jobs_max_bytes=1000) as gateway:
        declared = await submit(gateway, jsonl(50))
        assert declared.status_code == 413
        assert "ORCHARD_GATEWAY_JOBS_MAX_BYTES" in declared.json()["error"]
        streamed = await gateway.client.post(
            "/v1/jobs?model=credit-risk&format=jsonl", content=_chunked(jsonl(50))
        )
        assert streamed.status_code == 413
        assert (await gateway.client.get("/v1/jobs")).json()["jobs"] == []
    assert leftovers(jobs_dir) == []


@pytest.mark.parametrize(
    ("body", "fmt", "message"),
    [
        (b'{"age": 1}\n{"age": \n', "jsonl", "line 2: not valid JSON"),
        (b'{"age": 1}\n[1, 2]\n', "jsonl", "line 2: must be a JSON object"),
        (b'{"age": 1}\n\n{"age": "old"}\n', "jsonl", "line 3, column 'age': is str"),
        (b'{"age": 1}\n{"income": 2}\n', "jsonl", "line 2: columns differ"),
        (b"\n\n", "jsonl", "the file holds no rows"),
        (b"age,income\n1,2\n3\n", "csv", "line 3: 1 fields, the header has 2"),
        (b"age,income\n1,\n", "csv", "line 2, column 'income': is null"),
        (b"age\n", "csv", "the file holds no rows"),
        (b"\xff\xfe,a\n1,2\n", "csv", "not UTF-8"),
    ],
)
async def test_a_malformed_upload_is_a_400_naming_the_line(
    make_gateway: MakeGateway,
    backend: FakeBackend,
    jobs_dir: Path,
    body: bytes,
    fmt: str,
    message: str,
) -> None:
    async with make_gateway(jobs_dir=jobs_dir) as gateway:
        reply = await submit(gateway, body, fmt=fmt)
    assert reply.status_code == 400
    assert message in reply.json()["error"]
    assert leftovers(jobs_dir) == []


async def test_an_upload_that_cannot_be_stored_is_a_503_not_a_500(
    make_gateway: MakeGateway, backend: FakeBackend, jobs_dir: Path
) -> None:
    async with make_gateway(jobs_dir=jobs_dir) as gateway:
        occupy(jobs_dir)
        reply = await submit(gateway, jsonl(1))
    assert reply.status_code == 503
    assert "cannot store batch job uploads" in reply.json()["error"]


async def test_the_format_comes_from_the_query_or_the_content_type(
    make_gateway: MakeGateway, backend: FakeBackend, jobs_dir: Path
) -> None:
    async with make_gateway(jobs_dir=jobs_dir) as gateway:
        ndjson = await gateway.client.post(
            "/v1/jobs?model=credit-risk",
            content=jsonl(1),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert (ndjson.status_code, ndjson.json()["format"]) == (202, "jsonl")
        unsaid = await gateway.client.post("/v1/jobs?model=credit-risk", content=jsonl(1))
        assert unsaid.status_code == 400
        assert "?format=jsonl|csv" in unsaid.json()["error"]
        wrong = await gateway.client.post("/v1/jobs?model=credit-risk&format=xml", content=b"x")
        assert wrong.status_code == 400


async def test_unknown_models_jobs_and_malformed_ids_are_404s(
    make_gateway: MakeGateway, backend: FakeBackend, jobs_dir: Path
) -> None:
    async with make_gateway(jobs_dir=jobs_dir) as gateway:
        model = await submit(gateway, jsonl(1), model="nope")
        assert model.status_code == 404
        assert "nope" in model.json()["error"]
        missing = "0" * 32
        for path in [
            f"/v1/jobs/{missing}",
            f"/v1/jobs/{missing}/results",
            "/v1/jobs/..%2F..%2Fetc",
            "/v1/jobs/ABC",
        ]:
            reply = await gateway.client.get(path)
            assert reply.status_code == 404, path
        assert (await gateway.client.post(f"/v1/jobs/{missing}/cancel")).status_code == 404
        no_model = await gateway.client.post("/v1/jobs?format=jsonl", content=jsonl(1))
        assert no_model.status_code == 400
    assert backend.seen == []
    assert leftovers(jobs_dir) == []


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_with_auth_on_a_key_sees_only_its_own_jobs_and_admin_sees_all(
    make_gateway: MakeGateway, backend: FakeBackend, jobs_dir: Path, tmp_path: Path
) -> None:
    pepper = "pepper-for-tests"
    keys: list[dict[str, Any]] = [
        {
            "id": key_id,
            "hash": hash_key(secret, pepper),
            "roles": roles,
            "rate_per_s": 1000,
            "burst": 1000,
        }
        for key_id, secret, roles in [
            ("team-a", "secret-a-0123456789", ["predict"]),
            ("team-b", "secret-b-0123456789", ["predict"]),
            ("ops", "secret-ops-0123456789", ["predict", "admin"]),
        ]
    ]
    keys_file = tmp_path / "keys.json"
    keys_file.write_bytes(orjson.dumps({"keys": keys}))
    settings = {"auth_enabled": True, "api_keys_file": keys_file, "api_key_pepper": pepper}
    async with make_gateway(jobs_dir=jobs_dir, **settings) as gateway:
        client = gateway.client
        assert (await client.get("/v1/jobs")).status_code == 401
        reply = await client.post(
            "/v1/jobs?model=credit-risk&format=jsonl",
            content=jsonl(1),
            headers=_bearer("secret-a-0123456789"),
        )
        assert reply.status_code == 202
        job_id = reply.json()["id"]
        own = await client.get(f"/v1/jobs/{job_id}", headers=_bearer("secret-a-0123456789"))
        assert own.status_code == 200
        other = await client.get(f"/v1/jobs/{job_id}", headers=_bearer("secret-b-0123456789"))
        assert other.status_code == 404
        listed = await client.get("/v1/jobs", headers=_bearer("secret-b-0123456789"))
        assert listed.json()["jobs"] == []
        admin = await client.get("/v1/jobs", headers=_bearer("secret-ops-0123456789"))
        assert [j["id"] for j in admin.json()["jobs"]] == [job_id]
        batch = await client.post("/v1/models/credit-risk/batch", json={"rows": [{"a": 1}]})
        assert batch.status_code == 401
