"""The chart's KServe resources: the serving runtime and the InferenceServices in values,
built strictly as KServe SDK types."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate

from .chart_render import (
    CHART,
    EVENTS_API,
    GPU,
    KUBERNETES_VERSION,
    RELEASE,
    _helm,
    _of_kind,
    _render,
    scenario,
)

# --- KServe: the serving runtime and the InferenceServices in values ----------------------


def _runtime(
    documents: tuple[dict[str, Any], ...], name: str = "orchard-inference"
) -> dict[str, Any]:
    (runtime,) = [
        r for r in _of_kind(documents, "ClusterServingRuntime") if r["metadata"]["name"] == name
    ]
    return runtime


def _env(documents: tuple[dict[str, Any], ...], component: str) -> dict[str, str]:
    (deployment,) = [
        d
        for d in _of_kind(documents, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def _inference_services(values: Path) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _of_kind(_render(values), "InferenceService")}


def test_the_runtime_serves_mlflow_sklearn_and_pytorch_on_v1_and_v2() -> None:
    spec = _runtime(_render(CHART / "ci" / "default-values.yaml"))["spec"]
    assert {f["name"] for f in spec["supportedModelFormats"]} == {"mlflow", "sklearn", "pytorch"}
    assert spec["protocolVersions"] == ["v1", "v2"]
    (container,) = spec["containers"]
    assert container["image"] == "ghcr.io/orchard-ml/inference:0.1.0"
    # KServe substitutes {{.Name}}; the runtime serves what the storage initializer fetched.
    assert "--model_name={{.Name}}" in container["args"]
    assert "--model_dir=/mnt/models" in container["args"]


def test_the_registry_runtime_loads_from_mlflow_without_a_model_dir() -> None:
    spec = _runtime(_render(CHART / "ci" / "default-values.yaml"), "orchard-registry")["spec"]
    assert spec["supportedModelFormats"] == [{"name": "mlflow", "autoSelect": False, "priority": 1}]
    (container,) = spec["containers"]
    assert container["args"] == ["--http_port=8080"]


@scenario
def test_retrainings_inference_services_are_servable_by_the_charts_registry_runtime(
    values: Path,
) -> None:
    # What retraining will create at run time, from the settings the chart gives it.
    from orchard_retraining.controller.build import inference_service_settings
    from orchard_retraining.k8s import inference_service
    from orchard_retraining.settings import RetrainingSettings

    documents = _render(values)
    env = _env(documents, "retraining")
    settings = RetrainingSettings(
        **{k.removeprefix("ORCHARD_RETRAINING_").lower(): v for k, v in env.items()
           if k.startswith("ORCHARD_RETRAINING_")},
        mlflow_tracking_uri=env["MLFLOW_TRACKING_URI"],
    )  # fmt: skip
    assert settings.traffic_backend == "kubernetes"
    isvc_settings = inference_service_settings(settings, "orchard")
    isvc = inference_service(
        isvc_settings,
        model="credit-risk",
        version="3",
        storage_uri="models:/credit-risk/3",
        model_format="mlflow",
    )
    model = isvc["spec"]["predictor"]["model"]
    runtime = _runtime(documents, model["runtime"])["spec"]
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["supportedModelFormats"]}
    assert model["protocolVersion"] in runtime["protocolVersions"]
    accounts = {a["metadata"]["name"] for a in _of_kind(documents, "ServiceAccount")}
    assert isvc["spec"]["predictor"]["serviceAccountName"] in accounts
    mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
    charts_own = _of_kind(documents, "InferenceService")
    assert all(
        i["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode for i in charts_own
    )
    # The pods reach MLflow at the URL they are given (the Service the chart renders).
    (mlflow,) = [
        s for s in _of_kind(documents, "Service") if s["metadata"]["name"].endswith("-mlflow")
    ]
    assert env["MLFLOW_TRACKING_URI"].startswith(f"http://{mlflow['metadata']['name']}.")


@scenario
def test_the_runtime_container_is_a_valid_restricted_container(values: Path) -> None:
    documents = _render(values)
    for runtime in _of_kind(documents, "ClusterServingRuntime"):
        spec = runtime["spec"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "runtime"},
            "spec": {"containers": spec["containers"], "volumes": spec["volumes"]},
        }
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        (container,) = spec["containers"]
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}


@scenario
def test_each_inference_service_can_be_served_by_the_runtime(values: Path) -> None:
    documents = _render(values)
    runtimes = {
        r["metadata"]["name"]: r["spec"] for r in _of_kind(documents, "ClusterServingRuntime")
    }
    accounts = {a["metadata"]["name"] for a in _of_kind(documents, "ServiceAccount")}
    for isvc in _of_kind(documents, "InferenceService"):
        predictor = isvc["spec"]["predictor"]
        model = predictor["model"]
        runtime = runtimes[model["runtime"]]
        formats = {f["name"] for f in runtime["supportedModelFormats"]}
        assert model["modelFormat"]["name"] in formats
        assert model["protocolVersion"] in runtime["protocolVersions"]
        assert predictor["serviceAccountName"] in accounts
        assert 0 <= predictor["minReplicas"] <= predictor["maxReplicas"]
        # Retraining's own InferenceServices carry the same two labels (network policies).
        labels = isvc["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "inference"
        assert labels["app.kubernetes.io/part-of"] == "orchard"


def _evaluation_events_path() -> str:
    source = EVENTS_API.read_text()
    assert 'APIRouter(prefix="/v1"' in source
    assert '@router.post("/events")' in source
    return "/v1/events"


@scenario
def test_the_payload_logger_posts_to_evaluations_cloudevents_intake(values: Path) -> None:
    documents = _render(values)
    (evaluation,) = [
        s for s in _of_kind(documents, "Service") if s["metadata"]["name"].endswith("-evaluation")
    ]
    base = f"http://{evaluation['metadata']['name']}.orchard.svc:{evaluation['spec']['ports'][0]['port']}"
    for isvc in _of_kind(documents, "InferenceService"):
        logger = isvc["spec"]["predictor"]["logger"]
        assert logger == {"mode": "all", "url": base + _evaluation_events_path()}


def test_the_gpu_model_lands_on_a_gpu_node_and_the_cpu_model_does_not() -> None:
    services = _inference_services(CHART / "ci" / "gpu-values.yaml")
    digits = services["digits"]["spec"]["predictor"]
    resources = digits["model"]["resources"]
    assert resources["limits"][GPU] == resources["requests"][GPU] == "1"
    assert digits["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert digits["tolerations"] == [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    assert {"name": "ORCHARD_INFERENCE_DEVICE", "value": "cuda"} in digits["model"]["env"]
    cpu = services["credit-risk"]["spec"]["predictor"]
    assert GPU not in cpu["model"]["resources"]["limits"]
    assert "nodeSelector" not in cpu
    assert "tolerations" not in cpu


@scenario
def test_the_deployment_mode_is_annotated_on_every_inference_service(values: Path) -> None:
    expected = "Serverless" if values.name == "serverless-values.yaml" else "RawDeployment"
    for isvc in _inference_services(values).values():
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == expected


def test_serverless_scales_to_zero() -> None:
    (isvc,) = _inference_services(CHART / "ci" / "serverless-values.yaml").values()
    assert isvc["spec"]["predictor"]["minReplicas"] == 0


def test_scale_to_zero_without_serverless_is_refused() -> None:
    done = subprocess.run(
        [
            _helm(), "template", RELEASE, str(CHART),
            "-f", str(CHART / "ci" / "serverless-values.yaml"),
            "--set", "kserve.deploymentMode=RawDeployment",
        ],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "needs kserve.deploymentMode Serverless" in done.stderr


def test_an_unknown_model_format_is_refused() -> None:
    done = subprocess.run(
        [
            _helm(), "template", RELEASE, str(CHART),
            "--set", "kserve.models[0].name=m",
            "--set", "kserve.models[0].format=onnx",
            "--set", "kserve.models[0].storageUri=s3://b/m",
        ],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "format" in done.stderr


def test_retraining_serves_the_gpu_models_versions_on_the_gpu_pool() -> None:
    from orchard_retraining.controller.build import inference_service_settings
    from orchard_retraining.settings import RetrainingSettings

    documents = _render(CHART / "ci" / "gpu-values.yaml")
    env = _env(documents, "retraining")
    settings = RetrainingSettings(
        kserve_gpu_models=env["ORCHARD_RETRAINING_KSERVE_GPU_MODELS"],
        mlflow_tracking_uri=env["MLFLOW_TRACKING_URI"],
    )
    isvc = inference_service_settings(settings, "orchard")
    gpu = isvc.gpu_for("digits")
    assert gpu is not None
    assert isvc.gpu_for("credit-risk") is None
    # The same pool the chart's own GPU InferenceService selects and tolerates.
    (digits,) = [
        i for i in _of_kind(documents, "InferenceService") if i["metadata"]["name"] == "digits"
    ]
    predictor = digits["spec"]["predictor"]
    assert predictor["nodeSelector"] == dict(gpu.node_selector)
    assert [t.as_dict() for t in gpu.tolerations] == [
        {k: v for k, v in t.items() if k != "value"} for t in predictor["tolerations"]
    ]
