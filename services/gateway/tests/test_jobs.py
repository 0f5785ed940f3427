"""Batch jobs across gateway restarts: resumed where they were, or failed with a reason."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx2
import orjson

from orchard_gateway.job_store import Job, JobStatus

from .conftest import Gateway, MakeGateway
from .factories import eventually
from .fake_backend import FakeBackend


def jsonl(n: int) -> bytes:
    """``n`` rows as JSONL; row i has ``age`` 20 + i (the fake backend's echo gives it back)."""
    return b"".join(
        orjson.dumps({"age": 20 + i, "income": 100.0 * i, "purpose": f"p{i % 3}"}) + b"\n"
        for i in range(n)
    )


async def submit(
    gateway: Gateway, body: bytes, *, model: str = "credit-risk", fmt: str = "jsonl"
) -> httpx2.Response:
    return await gateway.client.post(f"/v1/jobs?model={model}&format={fmt}", content=body)


async def job(gateway: Gateway, job_id: str) -> dict[str, Any]:
    reply = await gateway.client.get(f"/v1/jobs/{job_id}")
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


async def wait_for(
    gateway: Gateway, job_id: str, status: str, *, within_s: float = 5.0
) -> dict[str, Any]:
    async def reached() -> bool:
        return (await job(gateway, job_id))["status"] == status

    await eventually(reached, f"job {job_id} to be {status}", within_s=within_s)
    return await job(gateway, job_id)


async def results(gateway: Gateway, job_id: str) -> list[dict[str, Any]]:
    reply = await gateway.client.get(f"/v1/jobs/{job_id}/results")
    assert reply.status_code == 200, reply.text
    return [orjson.loads(line) for line in reply.content.splitlines()]


def state_on_disk(jobs_dir: Path, job_id: str) -> dict[str, Any]:
    state: dict[str, Any] = orjson.loads((jobs_dir / job_id / "state.json").read_bytes())
    return state


async def test_a_restart_in_the_middle_of_a_job_resumes_it_with_every_row_once(
    make_gateway: MakeGateway, backend: FakeBackend, tmp_path: Path
) -> None:
    jobs_dir = tmp_path / "jobs"
    settings = {"jobs_dir": jobs_dir, "batch_chunk_size": 2, "jobs_max_concurrent": 1}
    backend.echo = True
    backend.stall_from = 2  # chunks 0 and 1 are answered, chunk 2 hangs
    async with make_gateway(**settings) as first:
        running = (await submit(first, jsonl(9))).json()["id"]
        waiting = (await submit(first, jsonl(3))).json()["id"]

        async def two_chunks_done() -> bool:
            return (await job(first, running))["chunks_done"] == 2 and backend.infer_calls == 3

        await eventually(two_chunks_done, "two chunks done and the third sent")
        assert (await job(first, waiting))["status"] == "queued"
    # Stopped between chunks: on disk as it was, nothing lost.
    state = state_on_disk(jobs_dir, running)
    assert (state["status"], state["chunks_done"]) == ("running", 2)
    assert state_on_disk(jobs_dir, waiting)["status"] == "queued"
    # A chunk half-written when the gateway died is cut off at the recorded offset.
    with (jobs_dir / running / "results.jsonl").open("ab") as out:
        out.write(b'{"row": 4, "score": 0.')

    backend.stall_from = None
    async with make_gateway(**settings) as second:
        done = await wait_for(second, running, "succeeded")
        assert (done["rows_done"], done["chunks_done"], done["progress"]) == (9, 5, 1.0)
        lines = await results(second, running)
        assert [line["row"] for line in lines] == list(range(9))
        assert [line["echo"] for line in lines] == [20 + i for i in range(9)]
        await wait_for(second, waiting, "succeeded")
        assert [line["row"] for line in await results(second, waiting)] == [0, 1, 2]
    # Chunks 0 and 1 were sent once, chunk 2 twice (its first answer never came): 5 + 1, plus
    # the second job's 2 chunks.
    assert backend.infer_calls == 8


async def test_an_unreadable_state_or_input_on_start_fails_the_job_with_a_reason(
    make_gateway: MakeGateway, backend: FakeBackend, tmp_path: Path
) -> None:
    jobs_dir = tmp_path / "jobs"
    broken = uuid.uuid4().hex
    (jobs_dir / broken).mkdir(parents=True)
    (jobs_dir / broken / "state.json").write_bytes(b'{"id": "half a state')
    no_input = uuid.uuid4().hex
    (jobs_dir / no_input).mkdir()
    queued = Job(
        id=no_input,
        model="credit-risk",
        format="jsonl",
        rows=3,
        chunk_size=2,
        status=JobStatus.QUEUED,
        created="2026-01-01T00:00:00.000000+00:00",
    )
    (jobs_dir / no_input / "state.json").write_bytes(queued.to_json())
    never_accepted = jobs_dir / uuid.uuid4().hex
    never_accepted.mkdir()
    (never_accepted / "upload.part").write_bytes(jsonl(2))

    async with make_gateway(jobs_dir=jobs_dir) as gateway:
        unreadable = await job(gateway, broken)
        assert unreadable["status"] == "failed"
        assert "state file could not be read" in unreadable["error"]
        missing = await wait_for(gateway, no_input, "failed")
        assert "input file input.jsonl is missing" in missing["error"]
        listed = (await gateway.client.get("/v1/jobs")).json()["jobs"]
        assert {j["id"] for j in listed} == {broken, no_input}
        assert gateway.metric("orchard_gateway_jobs", status="failed") == 2
    assert not never_accepted.exists()
    assert (jobs_dir / broken / "state.json.unreadable").exists()
    assert state_on_disk(jobs_dir, broken)["status"] == "failed"
    assert backend.seen == []
