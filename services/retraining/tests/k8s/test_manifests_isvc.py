"""The InferenceService manifest: KServe SDK typed models, fields, GPU, logger, names."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import kserve
import pytest

from orchard_retraining.k8s import (
    ContainerResources,
    GpuSettings,
    InferenceServiceSettings,
    inference_service,
    inference_service_name,
)
from orchard_retraining.k8s.names import is_dns_label

URI = "s3://orchard-mlflow/artifacts/1/models/m-credit-risk/artifacts"


def _isvc(settings: InferenceServiceSettings | None = None, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": "credit-risk",
        "version": "7",
        "storage_uri": URI,
        "model_format": "mlflow",
    } | overrides
    return inference_service(settings or InferenceServiceSettings(), **kwargs)


FULL = InferenceServiceSettings(
    deployment_mode="Serverless",
    min_replicas=0,
    max_replicas=3,
    gpu=GpuSettings(),
    evaluation_url="http://evaluation.orchard:8002/",
    resources=ContainerResources("1", "4Gi", "2", "8Gi"),
)


@pytest.mark.parametrize("settings", [None, FULL], ids=["default", "gpu-serverless-logger"])
def test_isvc_deserialises_into_the_kserve_sdk_typed_models_without_losing_a_field(
    settings: InferenceServiceSettings | None,
    kserve_typed: Any,
    kserve_dict: Any,
    round_trip_extras: Any,
) -> None:
    manifest = _isvc(settings)
    typed = kserve_typed(manifest, "V1beta1InferenceService")
    assert isinstance(typed, kserve.V1beta1InferenceService)
    # Every field survives; the SDK only adds its own model defaults (the container name).
    assert round_trip_extras(kserve_dict(typed), manifest) == {"$.spec.predictor.model.name": ""}
    predictor = typed.spec.predictor
    assert isinstance(predictor, kserve.V1beta1PredictorSpec)
    assert isinstance(predictor.model, kserve.V1beta1ModelSpec)
    assert predictor.model.model_format.name == "mlflow"
    assert predictor.model.storage_uri == URI
    assert predictor.model.runtime == "orchard-inference"
    assert predictor.model.protocol_version == "v2"
    assert (
        typed.metadata.annotations["serving.kserve.io/deploymentMode"]
        == (settings or InferenceServiceSettings()).deployment_mode
    )


def test_the_typed_check_rejects_a_field_kserve_does_not_know(kserve_typed: Any) -> None:
    manifest = _isvc()
    manifest["spec"]["predictor"]["model"]["storageURI"] = URI
    with pytest.raises(AssertionError, match="storageURI"):
        kserve_typed(manifest, "V1beta1InferenceService")


def test_isvc_matches_what_can_be_built_from_the_sdk_models(
    kserve_dict: Any, round_trip_extras: Any
) -> None:
    from kubernetes.client import V1ObjectMeta, V1ResourceRequirements

    built = kserve.V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=V1ObjectMeta(
            name="credit-risk-v7",
            namespace="orchard",
            labels=_isvc()["metadata"]["labels"],
            annotations={
                "serving.kserve.io/deploymentMode": "RawDeployment",
                "orchard.dev/model-name": "credit-risk",
            },
        ),
        spec=kserve.V1beta1InferenceServiceSpec(
            predictor=kserve.V1beta1PredictorSpec(
                min_replicas=1,
                max_replicas=1,
                service_account_name="orchard-models",
                model=kserve.V1beta1ModelSpec(
                    model_format=kserve.V1beta1ModelFormat(name="mlflow"),
                    storage_uri=URI,
                    runtime="orchard-inference",
                    protocol_version="v2",
                    resources=V1ResourceRequirements(
                        requests={"cpu": "500m", "memory": "1Gi"}, limits={"memory": "2Gi"}
                    ),
                ),
            )
        ),
    )
    assert round_trip_extras(kserve_dict(built), _isvc()) == {"$.spec.predictor.model.name": ""}


def test_isvc_is_named_per_model_and_version_with_labels() -> None:
    isvc = _isvc()
    meta = isvc["metadata"]
    assert meta["name"] == "credit-risk-v7"
    assert meta["namespace"] == "orchard"
    assert meta["labels"]["orchard.dev/model"] == "credit-risk"
    assert meta["labels"]["orchard.dev/version"] == "7"
    assert meta["labels"]["app.kubernetes.io/part-of"] == "orchard"
    assert meta["labels"]["app.kubernetes.io/component"] == "inference"
    assert _isvc(version="8")["metadata"]["name"] != meta["name"]


def test_default_isvc_is_a_raw_deployment_on_cpu_without_logger() -> None:
    isvc = _isvc()
    predictor = isvc["spec"]["predictor"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 1)
    assert "logger" not in predictor
    assert "nodeSelector" not in predictor
    assert "tolerations" not in predictor
    assert "nvidia.com/gpu" not in str(predictor["model"]["resources"])


def test_gpu_serverless_isvc_with_payload_logging() -> None:
    isvc = _isvc(FULL, model_format="pytorch")
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (0, 3)
    assert predictor["logger"] == {"mode": "all", "url": "http://evaluation.orchard:8002/v1/events"}
    assert model["modelFormat"] == {"name": "pytorch"}
    assert model["resources"] == {
        "requests": {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
    }
    assert predictor["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert predictor["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert {"name": "ORCHARD_INFERENCE_DEVICE", "value": "cuda"} in model["env"]


def test_runtime_and_protocol_are_optional() -> None:
    model = _isvc(InferenceServiceSettings(runtime=None, protocol_version=None))["spec"][
        "predictor"
    ]["model"]
    assert "runtime" not in model
    assert "protocolVersion" not in model


@pytest.mark.parametrize(
    ("model", "version"),
    [("a" * 120, "12"), ("Credit_Risk/EU", "3"), ("7-eleven", "1"), ("ü", "v2")],
)
def test_any_model_name_gives_a_dns_1035_name_within_kserves_host_budget(
    model: str, version: str, kserve_typed: Any
) -> None:
    settings = InferenceServiceSettings(namespace="orchard-production")
    isvc = _isvc(settings, model=model, version=version)
    name = isvc["metadata"]["name"]
    assert is_dns_label(name)
    assert name[0].isalpha()
    # KServe's default host label is "<name>-predictor-<namespace>" (kserve/kserve#4807).
    assert len(f"{name}-predictor-orchard-production") <= 63
    assert name == inference_service_name(settings, model, version)
    assert isvc["metadata"]["annotations"]["orchard.dev/model-name"] == model
    kserve_typed(isvc, "V1beta1InferenceService")


@pytest.mark.parametrize(
    "storage_uri", ["models:/credit-risk/7", "runs:/abc/model", "/mnt/models", "", "models:/"]
)
def test_storage_uris_kserve_cannot_fetch_are_rejected(storage_uri: str) -> None:
    with pytest.raises(ValueError, match="storage_uri"):
        _isvc(storage_uri=storage_uri)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"namespace": "n" * 40}, "too long"),
        ({"namespace": "Bad"}, "namespace"),
        ({"runtime": "Orchard Inference"}, "runtime"),
        ({"deployment_mode": "ModelMesh"}, "deployment_mode"),
        ({"protocol_version": "v3"}, "protocol_version"),
        ({"min_replicas": 0}, "Serverless"),
        ({"min_replicas": -1}, "min_replicas"),
        ({"min_replicas": 3, "max_replicas": 2}, "max_replicas"),
        ({"evaluation_url": "evaluation:8002"}, "evaluation_url"),
        ({"service_account": "Nope!"}, "service_account"),
        ({"mlflow_tracking_uri": "mlflow:5000"}, "mlflow_tracking_uri"),
    ],
)
def test_bad_isvc_settings_raise_value_error_naming_the_field(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        InferenceServiceSettings(**kwargs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"model_format": "MLflow"}, "model_format"), ({"version": ""}, "non-empty")],
)
def test_bad_isvc_arguments_raise_value_error(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _isvc(**overrides)


REGISTRY = InferenceServiceSettings(
    runtime="orchard-registry", mlflow_tracking_uri="http://orchard-mlflow.orchard:5000"
)


def test_a_registry_version_is_loaded_by_the_runtime_under_its_registered_name(
    kserve_typed: Any,
) -> None:
    # The gateway calls /v2/models/credit-risk/versions/7/infer on the version's URL: the
    # runtime must serve that name and version, not the InferenceService's name.
    isvc = _isvc(REGISTRY, storage_uri="models:/credit-risk/7")
    model = isvc["spec"]["predictor"]["model"]
    assert "storageUri" not in model  # no storage initializer: nothing for it to fetch
    assert model["runtime"] == "orchard-registry"
    env = {e["name"]: e["value"] for e in model["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://orchard-mlflow.orchard:5000"
    assert json.loads(env["ORCHARD_INFERENCE_MODELS"]) == {"credit-risk": "models:/credit-risk/7"}
    assert env["ORCHARD_INFERENCE_LAZY_LOAD_REGISTRY"] == "false"
    kserve_typed(isvc, "V1beta1InferenceService")


def test_a_registry_version_on_gpu_keeps_the_device_setting() -> None:
    settings = dataclasses.replace(REGISTRY, gpu=GpuSettings())
    env = _isvc(settings, storage_uri="models:/digits/2")["spec"]["predictor"]["model"]["env"]
    assert [e["name"] for e in env] == [
        "MLFLOW_TRACKING_URI",
        "ORCHARD_INFERENCE_MODELS",
        "ORCHARD_INFERENCE_LAZY_LOAD_REGISTRY",
        "ORCHARD_INFERENCE_DEVICE",
    ]


def test_a_registry_version_without_a_tracking_uri_is_rejected() -> None:
    with pytest.raises(ValueError, match="mlflow_tracking_uri"):
        _isvc(InferenceServiceSettings(), storage_uri="models:/credit-risk/7")


def test_gpu_models_alone_land_on_gpu_nodes() -> None:
    settings = dataclasses.replace(REGISTRY, gpu=GpuSettings(), gpu_models=("digits",))
    digits = _isvc(settings, model="digits", storage_uri="models:/digits/2")["spec"]["predictor"]
    credit = _isvc(settings, storage_uri="models:/credit-risk/7")["spec"]["predictor"]
    assert digits["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert digits["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "nvidia.com/gpu" not in str(credit)
    assert "nodeSelector" not in credit


def test_the_services_settings_shape_its_inference_services() -> None:
    from orchard_retraining.controller.build import inference_service_settings
    from orchard_retraining.settings import RetrainingSettings

    settings = RetrainingSettings(
        mlflow_tracking_uri="http://orchard-mlflow.orchard.svc:5000",
        evaluation_url="http://orchard-evaluation.orchard.svc:8002",
        kserve_deployment_mode="Serverless",
        kserve_service_account="",
        kserve_gpu_models='["digits"]',
    )
    isvc = inference_service_settings(settings, "orchard")
    assert (isvc.runtime, isvc.deployment_mode, isvc.service_account) == (
        "orchard-registry",
        "Serverless",
        None,
    )
    assert isvc.evaluation_url is None  # the gateway logs what it routes
    assert isvc.gpu_for("digits") is not None
    assert isvc.gpu_for("credit-risk") is None
    logged = inference_service_settings(
        RetrainingSettings(evaluation_url="http://e:8002", kserve_payload_logger=True), "orchard"
    )
    assert logged.evaluation_url == "http://e:8002"
