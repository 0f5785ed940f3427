"""KubernetesTrafficBackend against a recorded API contract (real CustomObjectsApi)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes.client import ApiClient

from orchard_retraining.k8s import (
    DeploymentNotReady,
    InferenceServiceSettings,
    KubernetesBackendError,
    KubernetesTrafficBackend,
    TrafficBackend,
    inference_service,
)

SETTINGS = InferenceServiceSettings(evaluation_url="http://evaluation.orchard:8002")
NAME = "credit-risk-v7"
ISVCS = "/apis/serving.kserve.io/v1beta1/namespaces/orchard/inferenceservices"
URI = "s3://orchard-mlflow/artifacts/1/models/m-credit-risk/artifacts"
DEPLOY = ("credit-risk", "7", URI, "mlflow")
INTERNAL = f"http://{NAME}-predictor.orchard.svc.cluster.local"
EXTERNAL = f"http://{NAME}-orchard.example.com"
T = "2026-11-27T05:20:00Z"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(api_client: ApiClient, clock: FakeClock) -> KubernetesTrafficBackend:
    return KubernetesTrafficBackend.from_api_client(
        SETTINGS, api_client, ready_timeout_s=30, poll_interval_s=5, clock=clock, sleep=clock.sleep
    )


def _manifest() -> dict[str, Any]:
    return inference_service(
        SETTINGS, model="credit-risk", version="7", storage_uri=URI, model_format="mlflow"
    )


def _served(
    *,
    ready: bool,
    generation: int = 1,
    observed: int = 1,
    resource_version: str = "5012",
    failed: bool = False,
) -> dict[str, Any]:
    """The InferenceService as the API server returns it, status set by the KServe controller."""
    isvc = _manifest()
    isvc["metadata"] |= {
        "uid": "6f1d2c3b-0a9e-4f7d-8c6b-5a4e3d2c1b0a",
        "resourceVersion": resource_version,
        "generation": generation,
        "creationTimestamp": T,
        "finalizers": ["inferenceservice.finalizers"],
    }
    state = "FailedToLoad" if failed else ("Loaded" if ready else "Pending")
    status: dict[str, Any] = {
        "observedGeneration": observed,
        "conditions": [
            {
                "type": "IngressReady",
                "status": "True" if ready else "False",
                "lastTransitionTime": T,
            },
            {
                "type": "PredictorReady",
                "status": "True" if ready else "False",
                "lastTransitionTime": T,
            },
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": T,
                **({} if ready else {"reason": "PredictorNotReady"}),
            },
        ],
        "modelStatus": {
            "transitionStatus": "UpToDate"
            if ready
            else ("BlockedByFailedLoad" if failed else "InProgress"),
            "states": {"activeModelState": "Loaded" if ready else "", "targetModelState": state},
            "copies": {"failedCopies": 1 if failed else 0, "totalCopies": 1},
        },
        "deploymentMode": "RawDeployment",
    }
    if failed:
        status["modelStatus"]["lastFailureInfo"] = {
            "reason": "ModelLoadFailed",
            "message": "no MLmodel under /mnt/models",
            "location": f"{NAME}-predictor-6d5f7c8b9-x2l4q",
            "exitCode": 2,
        }
    if ready:
        status |= {"url": EXTERNAL, "address": {"url": INTERNAL}}
    isvc["status"] = status
    return isvc


def _conflict() -> tuple[int, str, str]:
    return 409, "AlreadyExists", f'inferenceservices.serving.kserve.io "{NAME}" already exists'


def test_it_implements_the_traffic_backend_protocol(backend: KubernetesTrafficBackend) -> None:
    assert isinstance(backend, TrafficBackend)


def test_deploy_creates_the_isvc_and_returns_its_url_once_ready(
    backend: KubernetesTrafficBackend, api_server: Any, clock: FakeClock
) -> None:
    created = _served(ready=False, observed=0)
    del created["status"]
    api_server.reply(201, created, reason="Created")
    api_server.reply(200, _served(ready=False))
    api_server.reply(200, _served(ready=True))
    assert backend.deploy(*DEPLOY) == INTERNAL
    create, poll1, poll2 = api_server.calls
    assert (create.method, create.path, create.query) == ("POST", ISVCS, {})
    assert create.body == _manifest()
    assert [(c.method, c.path, c.body) for c in (poll1, poll2)] == [
        ("GET", f"{ISVCS}/{NAME}", None)
    ] * 2
    assert clock.sleeps == [5]


def test_deploy_over_an_existing_isvc_replaces_it_with_the_current_resource_version(
    backend: KubernetesTrafficBackend, api_server: Any
) -> None:
    code, reason, message = _conflict()
    api_server.fail(
        code, reason, message, name=NAME, group="serving.kserve.io", kind="inferenceservices"
    )
    api_server.reply(200, _served(ready=True, resource_version="5012"))
    api_server.reply(200, _served(ready=True, generation=2, observed=1, resource_version="5013"))
    # Ready, but for the previous generation: the old spec is still serving.
    api_server.reply(200, _served(ready=True, generation=2, observed=1, resource_version="5013"))
    api_server.reply(200, _served(ready=True, generation=2, observed=2, resource_version="5020"))
    assert backend.deploy(*DEPLOY) == INTERNAL
    create, get, replace, stale, fresh = api_server.calls
    assert (create.method, get.method, replace.method) == ("POST", "GET", "PUT")
    assert get.path == replace.path == stale.path == fresh.path == f"{ISVCS}/{NAME}"
    expected = copy.deepcopy(_manifest())
    expected["metadata"]["resourceVersion"] = "5012"
    assert replace.body == expected


def test_deploy_stops_early_when_the_model_fails_to_load(
    backend: KubernetesTrafficBackend, api_server: Any, clock: FakeClock
) -> None:
    api_server.reply(201, _served(ready=False, observed=0), reason="Created")
    api_server.reply(200, _served(ready=False, failed=True))
    with pytest.raises(DeploymentNotReady, match="ModelLoadFailed: no MLmodel under /mnt/models"):
        backend.deploy(*DEPLOY)
    assert clock.sleeps == []


def test_deploy_gives_up_after_the_ready_timeout(
    backend: KubernetesTrafficBackend, api_server: Any, clock: FakeClock
) -> None:
    api_server.reply(201, _served(ready=False, observed=0), reason="Created")
    for _ in range(7):
        api_server.reply(200, _served(ready=False))
    with pytest.raises(DeploymentNotReady, match="not ready after 30s"):
        backend.deploy(*DEPLOY)
    assert clock.sleeps == [5] * 6


def test_deploy_raises_when_the_api_refuses(
    backend: KubernetesTrafficBackend, api_server: Any
) -> None:
    api_server.fail(
        422, "Invalid", 'InferenceService.serving.kserve.io "credit-risk-v7" is invalid'
    )
    with pytest.raises(
        KubernetesBackendError, match="create InferenceService credit-risk-v7 failed: 422"
    ):
        backend.deploy(*DEPLOY)


def test_external_url_when_preferred(api_client: ApiClient, api_server: Any) -> None:
    backend = KubernetesTrafficBackend.from_api_client(
        SETTINGS, api_client, prefer_internal_url=False
    )
    api_server.reply(200, _served(ready=True))
    assert backend.url("credit-risk", "7") == EXTERNAL


def test_url_reads_the_isvc_status(backend: KubernetesTrafficBackend, api_server: Any) -> None:
    api_server.reply(200, _served(ready=True))
    api_server.reply(200, _served(ready=False))
    api_server.fail(404, "NotFound", f'inferenceservices.serving.kserve.io "{NAME}" not found')
    assert backend.url("credit-risk", "7") == INTERNAL
    assert backend.url("credit-risk", "7") is None
    assert backend.url("credit-risk", "7") is None
    assert [(c.method, c.path) for c in api_server.calls] == [("GET", f"{ISVCS}/{NAME}")] * 3


def test_retire_deletes_the_isvc(backend: KubernetesTrafficBackend, api_server: Any) -> None:
    api_server.reply(
        200,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": NAME, "group": "serving.kserve.io", "kind": "inferenceservices"},
        },
    )
    backend.retire("credit-risk", "7")
    (call,) = api_server.calls
    assert (call.method, call.path, call.query) == (
        "DELETE",
        f"{ISVCS}/{NAME}",
        {"propagationPolicy": "Background"},
    )


def test_retiring_a_version_that_is_not_served_is_fine(
    backend: KubernetesTrafficBackend, api_server: Any
) -> None:
    api_server.fail(404, "NotFound", f'inferenceservices.serving.kserve.io "{NAME}" not found')
    backend.retire("credit-risk", "7")


def test_a_failing_retire_raises(backend: KubernetesTrafficBackend, api_server: Any) -> None:
    api_server.fail(403, "Forbidden", "inferenceservices.serving.kserve.io is forbidden")
    with pytest.raises(KubernetesBackendError, match="403"):
        backend.retire("credit-risk", "7")


def test_an_isvc_deleted_between_conflict_and_replace_is_created_again(
    backend: KubernetesTrafficBackend, api_server: Any
) -> None:
    code, reason, message = _conflict()
    api_server.fail(code, reason, message)
    api_server.fail(404, "NotFound", f'inferenceservices.serving.kserve.io "{NAME}" not found')
    api_server.reply(201, _served(ready=False, observed=0), reason="Created")
    api_server.reply(200, _served(ready=True))
    assert backend.deploy(*DEPLOY) == INTERNAL
    assert [c.method for c in api_server.calls] == ["POST", "GET", "POST", "GET"]
    assert api_server.calls[2].body == _manifest()
