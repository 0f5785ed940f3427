"""The training Job manifest: typed-model and schema validation, security, GPU, names."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pydantic
import pytest
from kubernetes.client import ApiClient, V1Job

from orchard_retraining.k8s import (
    ContainerResources,
    GpuSettings,
    Toleration,
    TrainingJobSettings,
    job_name,
    training_job,
)
from orchard_retraining.k8s.names import is_dns_label

ARGS = ["--model", "credit-risk", "--json"]


def _job(settings: TrainingJobSettings | None = None, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": "credit-risk",
        "run_id": "run-0042",
        "trigger_id": "drift-17",
        "args": ARGS,
    } | overrides
    return training_job(
        settings or TrainingJobSettings(image="ghcr.io/orchard/pipelines:1.0"), **kwargs
    )


GPU_SETTINGS = TrainingJobSettings(
    image="ghcr.io/orchard/pipelines:1.0",
    credentials_secret="orchard-mlflow-credentials",
    env={"ORCHARD_PIPELINES_SEED": "7"},
    gpu=GpuSettings(count=2),
)


@pytest.mark.parametrize("settings", [None, GPU_SETTINGS], ids=["cpu", "gpu"])
def test_job_validates_against_the_typed_v1job_model_without_losing_a_field(
    settings: TrainingJobSettings | None,
) -> None:
    manifest = _job(settings)
    job = V1Job.model_validate(manifest)  # extra="forbid": unknown fields fail
    assert ApiClient().sanitize_for_serialization(job) == manifest


def test_a_misspelled_field_is_rejected_by_the_typed_model() -> None:
    manifest = copy.deepcopy(_job())
    manifest["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(pydantic.ValidationError, match="imagePullPolcy"):
        V1Job.model_validate(manifest)


@pytest.mark.parametrize("version", ["1.30", "1.33", kubernetes_validate.utils.latest_version()])
@pytest.mark.parametrize("settings", [None, GPU_SETTINGS], ids=["cpu", "gpu"])
def test_job_validates_against_the_kubernetes_schema_offline(
    version: str, settings: TrainingJobSettings | None
) -> None:
    assert kubernetes_validate.validate(_job(settings), version, strict=True)


def test_job_runs_the_training_command_with_the_given_args_and_limits() -> None:
    settings = TrainingJobSettings(
        image="ghcr.io/orchard/pipelines:1.0",
        namespace="ml",
        service_account="trainer",
        backoff_limit=3,
        active_deadline_seconds=3600,
        ttl_seconds_after_finished=600,
        mlflow_tracking_uri="http://mlflow.ml:5000",
    )
    job = _job(settings)
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert job["metadata"]["namespace"] == "ml"
    assert container["command"] == ["python", "-m", "orchard_pipelines.train"]
    assert container["args"] == ARGS
    assert container["image"] == "ghcr.io/orchard/pipelines:1.0"
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.ml:5000"} in container["env"]
    assert pod["serviceAccountName"] == "trainer"
    assert pod["restartPolicy"] == "Never"
    assert (
        spec["backoffLimit"],
        spec["activeDeadlineSeconds"],
        spec["ttlSecondsAfterFinished"],
    ) == (
        3,
        3600,
        600,
    )
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"memory": "4Gi"},
    }
    assert "nodeSelector" not in pod
    assert "tolerations" not in pod


def test_credentials_come_from_a_secret_and_extra_env_is_passed() -> None:
    (container,) = _job(GPU_SETTINGS)["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "orchard-mlflow-credentials"}}]
    assert {"name": "ORCHARD_PIPELINES_SEED", "value": "7"} in container["env"]


def test_job_pods_meet_the_restricted_pod_security_standard() -> None:
    pod = _job()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    # The read-only root still leaves a writable /tmp (and HOME points there).
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert {"name": "HOME", "value": "/tmp"} in container["env"]
    assert pod["automountServiceAccountToken"] is False


def test_gpu_options_request_gpus_and_target_the_gpu_node_pool() -> None:
    settings = TrainingJobSettings(
        image="img:1",
        gpu=GpuSettings(
            count=4,
            node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
            tolerations=(
                Toleration(key="nvidia.com/gpu"),
                Toleration(key="pool", operator="Equal", value="gpu", effect="NoExecute"),
            ),
        ),
    )
    pod = _job(settings)["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "4"
    assert resources["requests"]["nvidia.com/gpu"] == "4"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "pool", "operator": "Equal", "value": "gpu", "effect": "NoExecute"},
    ]


def test_default_gpu_options_match_nvidia_gpu_feature_discovery() -> None:
    pod = _job(TrainingJobSettings(image="img:1", gpu=GpuSettings()))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_labels_identify_the_model_run_and_trigger_on_job_and_pod() -> None:
    job = _job()
    labels = job["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "orchard"
    assert labels["app.kubernetes.io/managed-by"] == "orchard-retraining"
    assert labels["app.kubernetes.io/component"] == "training"
    assert labels["app.kubernetes.io/instance"] == job["metadata"]["name"]
    assert labels["orchard.dev/model"] == "credit-risk"
    assert labels["orchard.dev/run-id"] == "run-0042"
    assert labels["orchard.dev/trigger-id"] == "drift-17"
    assert job["spec"]["template"]["metadata"]["labels"] == labels


def test_job_name_is_readable_when_it_can_be() -> None:
    assert job_name("credit-risk", "run-0042") == "train-credit-risk-run-0042"
    assert _job()["metadata"]["name"] == "train-credit-risk-run-0042"


@pytest.mark.parametrize(
    ("model", "run_id"),
    [
        ("a" * 200, "3f2b9c1e-8a8d-4c1b-9f8e-0c6f0f5b2d11"),
        ("Credit_Risk/EU model", "RUN 1"),
        ("models:/x", "ü"),
    ],
)
def test_any_model_name_gives_a_dns_safe_job_name_and_valid_labels(model: str, run_id: str) -> None:
    job = _job(model=model, run_id=run_id)
    name = job["metadata"]["name"]
    assert is_dns_label(name)
    assert len(name) <= 63
    V1Job.model_validate(job)
    assert kubernetes_validate.validate(job, "1.33", strict=True)
    assert job["metadata"]["annotations"]["orchard.dev/model-name"] == model


def test_names_that_sanitise_alike_stay_distinct() -> None:
    long = "m" * 100
    assert job_name("credit_risk", "1") != job_name("credit.risk", "1")
    assert job_name(long + "a", "1") != job_name(long + "b", "1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": ""}, "image"),
        ({"image": "has space"}, "image"),
        ({"namespace": "Orchard"}, "namespace"),
        ({"service_account": "bad_name"}, "service_account"),
        ({"command": ()}, "command"),
        ({"mlflow_tracking_uri": "mlflow:5000"}, "mlflow_tracking_uri"),
        ({"credentials_secret": "Not Valid"}, "credentials_secret"),
        ({"env": {"1=bad": "x"}}, "env"),
        ({"backoff_limit": -1}, "backoff_limit"),
        ({"active_deadline_seconds": 0}, "active_deadline_seconds"),
        ({"ttl_seconds_after_finished": True}, "ttl_seconds_after_finished"),
        ({"run_as_user": 0}, "run_as_user"),
        ({"image_pull_policy": "Sometimes"}, "image_pull_policy"),
    ],
)
def test_bad_job_settings_raise_value_error_naming_the_field(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TrainingJobSettings(**({"image": "img:1"} | kwargs))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ContainerResources(cpu_request="lots"), "cpu_request"),
        (lambda: ContainerResources(memory_request="4Gi", memory_limit="2Gi"), "exceeds"),
        (lambda: GpuSettings(count=0), "gpu.count"),
        (lambda: GpuSettings(resource_name="gpu"), "resource_name"),
        (lambda: GpuSettings(node_selector={"bad key!": "x"}), "node_selector"),
        (lambda: Toleration(key="k", operator="Exists", value="v"), "Exists takes no value"),
        (lambda: Toleration(key="k", effect="Sometimes"), "effect"),  # type: ignore[arg-type]
    ],
)
def test_bad_resource_and_gpu_settings_raise_value_error(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_empty_model_or_run_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        _job(model="")
