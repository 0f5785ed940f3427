"""KubernetesPipelineBackend against a recorded API contract (real BatchV1Api/CoreV1Api)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient

from orchard_retraining.k8s import (
    KubernetesBackendError,
    KubernetesPipelineBackend,
    PipelineBackend,
    RunNotFound,
    RunState,
    RunStatus,
    TrainingJobSettings,
    training_job,
)

SETTINGS = TrainingJobSettings(image="ghcr.io/orchard/pipelines:1.0")
JOB = "train-credit-risk-run-0042"
JOBS = "/apis/batch/v1/namespaces/orchard/jobs"
RUN: dict[str, Any] = {
    "model": "credit-risk",
    "run_id": "run-0042",
    "trigger_id": "drift-17",
    "args": ["--json"],
}


@pytest.fixture
def backend(api_client: ApiClient) -> KubernetesPipelineBackend:
    return KubernetesPipelineBackend.from_api_client(SETTINGS, api_client)


def _served_job(status: dict[str, Any], *, suspend: bool = False) -> dict[str, Any]:
    """The Job as the API server returns it: our manifest plus server-set fields."""
    job = training_job(SETTINGS, **RUN)
    job["metadata"] |= {
        "uid": "0b7e6a52-5d1c-4d8e-9a51-3f0e6c1b2a11",
        "resourceVersion": "81234",
        "generation": 1,
        "creationTimestamp": "2026-11-27T05:00:00Z",
    }
    job["spec"] |= {"completions": 1, "parallelism": 1, "suspend": suspend}
    job["status"] = status
    return job


def test_it_implements_the_pipeline_backend_protocol(backend: KubernetesPipelineBackend) -> None:
    assert isinstance(backend, PipelineBackend)


def test_submit_posts_the_job_manifest(backend: KubernetesPipelineBackend, api_server: Any) -> None:
    api_server.reply(201, _served_job({}), reason="Created")
    assert backend.submit(**RUN) == JOB
    (call,) = api_server.calls
    assert (call.method, call.path, call.query) == ("POST", JOBS, {})
    assert call.body == training_job(SETTINGS, **RUN)


def test_resubmitting_a_run_is_idempotent(
    backend: KubernetesPipelineBackend, api_server: Any
) -> None:
    api_server.fail(
        409,
        "AlreadyExists",
        f'jobs.batch "{JOB}" already exists',
        name=JOB,
        group="batch",
        kind="jobs",
    )
    assert backend.submit(**RUN) == JOB
    assert [c.method for c in api_server.calls] == ["POST"]


def test_a_refused_submit_raises_with_the_api_status(
    backend: KubernetesPipelineBackend, api_server: Any
) -> None:
    api_server.fail(
        403,
        "Forbidden",
        'jobs.batch is forbidden: User "system:serviceaccount:orchard:retraining" cannot create resource "jobs"',
    )
    with pytest.raises(KubernetesBackendError, match=r"create Job .* 403 Forbidden") as raised:
        backend.submit(**RUN)
    assert not isinstance(raised.value, RunNotFound)


CONDITION_TIME = {
    "lastProbeTime": "2026-11-27T05:10:00Z",
    "lastTransitionTime": "2026-11-27T05:10:00Z",
}


@pytest.mark.parametrize(
    ("status", "suspend", "expected"),
    [
        ({}, False, RunStatus(RunState.PENDING)),
        (
            {"active": 1, "ready": 0, "startTime": "2026-11-27T05:00:01Z"},
            False,
            RunStatus(RunState.PENDING),
        ),
        (
            {"active": 1, "ready": 1, "startTime": "2026-11-27T05:00:01Z"},
            False,
            RunStatus(RunState.RUNNING),
        ),
        ({}, True, RunStatus(RunState.PENDING, "Suspended")),
        (
            {
                "succeeded": 1,
                "conditions": [
                    {
                        "type": "SuccessCriteriaMet",
                        "status": "True",
                        "reason": "CompletionsReached",
                        "message": "Reached expected number of succeeded pods",
                        **CONDITION_TIME,
                    },
                    {
                        "type": "Complete",
                        "status": "True",
                        "reason": "CompletionsReached",
                        "message": "Reached expected number of succeeded pods",
                        **CONDITION_TIME,
                    },
                ],
            },
            False,
            RunStatus(
                RunState.SUCCEEDED, "CompletionsReached: Reached expected number of succeeded pods"
            ),
        ),
        (
            {
                "failed": 2,
                "conditions": [
                    {
                        "type": "FailureTarget",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit",
                        **CONDITION_TIME,
                    },
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit",
                        **CONDITION_TIME,
                    },
                ],
            },
            False,
            RunStatus(
                RunState.FAILED, "BackoffLimitExceeded: Job has reached the specified backoff limit"
            ),
        ),
        (
            {
                "active": 1,
                "ready": 1,
                "conditions": [
                    {
                        "type": "FailureTarget",
                        "status": "True",
                        "reason": "DeadlineExceeded",
                        "message": "Job was active longer than specified deadline",
                        **CONDITION_TIME,
                    },
                ],
            },
            False,
            RunStatus(
                RunState.FAILED, "DeadlineExceeded: Job was active longer than specified deadline"
            ),
        ),
        (
            {
                "active": 1,
                "ready": 1,
                "conditions": [{"type": "Failed", "status": "False", **CONDITION_TIME}],
            },
            False,
            RunStatus(RunState.RUNNING),
        ),
    ],
    ids=[
        "new",
        "pod-starting",
        "running",
        "suspended",
        "complete",
        "backoff-exceeded",
        "deadline-terminating",
        "condition-false",
    ],
)
def test_status_reads_the_job_status_subresource_and_maps_it(
    backend: KubernetesPipelineBackend,
    api_server: Any,
    status: dict[str, Any],
    suspend: bool,
    expected: RunStatus,
) -> None:
    api_server.reply(200, _served_job(status, suspend=suspend))
    assert backend.status(JOB) == expected
    (call,) = api_server.calls
    assert (call.method, call.path, call.body) == ("GET", f"{JOBS}/{JOB}/status", None)
    assert expected.state.finished is (expected.state in (RunState.SUCCEEDED, RunState.FAILED))


def test_status_of_an_unknown_run_raises_run_not_found(
    backend: KubernetesPipelineBackend, api_server: Any
) -> None:
    api_server.fail(
        404, "NotFound", f'jobs.batch "{JOB}" not found', name=JOB, group="batch", kind="jobs"
    )
    with pytest.raises(RunNotFound, match=JOB):
        backend.status(JOB)


def _pod(name: str, created: str, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "orchard",
            "creationTimestamp": created,
            "labels": {"batch.kubernetes.io/job-name": JOB, "job-name": JOB},
        },
        "spec": {"containers": [{"name": "train", "image": "ghcr.io/orchard/pipelines:1.0"}]},
        "status": {"phase": phase},
    }


def test_logs_come_from_the_newest_pod_of_the_job(
    backend: KubernetesPipelineBackend, api_server: Any
) -> None:
    api_server.reply(
        200,
        {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "81300"},
            "items": [
                _pod(f"{JOB}-x7k2p", "2026-11-27T05:00:01Z", "Failed"),
                _pod(f"{JOB}-q9d4m", "2026-11-27T05:03:12Z"),
            ],
        },
    )
    api_server.reply(200, "epoch 1 loss=0.41\nepoch 2 loss=0.37\n")
    assert backend.logs(JOB, tail_lines=100) == "epoch 1 loss=0.41\nepoch 2 loss=0.37\n"
    listing, log = api_server.calls
    assert (listing.method, listing.path) == ("GET", "/api/v1/namespaces/orchard/pods")
    assert listing.query == {"labelSelector": f"batch.kubernetes.io/job-name={JOB}"}
    assert (log.method, log.path) == ("GET", f"/api/v1/namespaces/orchard/pods/{JOB}-q9d4m/log")
    assert log.query == {"container": "train", "tailLines": "100"}


def test_logs_before_a_pod_exists_are_empty(
    backend: KubernetesPipelineBackend, api_server: Any
) -> None:
    api_server.reply(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []})
    assert backend.logs(JOB) == ""
    assert len(api_server.calls) == 1


def test_logs_of_a_container_still_starting_are_empty(
    backend: KubernetesPipelineBackend, api_server: Any
) -> None:
    api_server.reply(
        200,
        {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {},
            "items": [_pod(f"{JOB}-x7k2p", "2026-11-27T05:00:01Z", "Pending")],
        },
    )
    api_server.fail(
        400,
        "BadRequest",
        f'container "train" in pod "{JOB}-x7k2p" is waiting to start: ContainerCreating',
    )
    assert backend.logs(JOB) == ""
    assert api_server.calls[1].query == {"container": "train"}


def test_cancel_deletes_the_job_and_its_pods_in_the_background(
    backend: KubernetesPipelineBackend, api_server: Any
) -> None:
    api_server.reply(
        200,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": JOB,
                "group": "batch",
                "kind": "jobs",
                "uid": "0b7e6a52-5d1c-4d8e-9a51-3f0e6c1b2a11",
            },
        },
    )
    backend.cancel(JOB)
    (call,) = api_server.calls
    assert (call.method, call.path) == ("DELETE", f"{JOBS}/{JOB}")
    assert call.query == {"propagationPolicy": "Background"}


def test_cancelling_a_job_that_is_gone_is_fine(
    backend: KubernetesPipelineBackend, api_server: Any
) -> None:
    api_server.fail(404, "NotFound", f'jobs.batch "{JOB}" not found')
    backend.cancel(JOB)


def test_a_failing_cancel_raises(backend: KubernetesPipelineBackend, api_server: Any) -> None:
    api_server.fail(500, "InternalError", "etcdserver: request timed out")
    with pytest.raises(KubernetesBackendError, match=r"delete Job .* 500"):
        backend.cancel(JOB)
