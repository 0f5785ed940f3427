"""The KServe manifests in k8s/: each parses, matches KServe's CRD types field for field, and
says what the platform relies on (formats, protocols, probes the runtime answers, GPUs).

KServe's SDK types (``kserve.V1alpha1ClusterServingRuntime``, ``V1beta1InferenceService``)
stand in for the CRD schemas: ``_strict`` (tests/k8s/kserve_types.py) builds them from the YAML and rejects any key the
type does not have, so a misspelt field fails here instead of being dropped by the API
server. Plain Kubernetes parts (containers, probes, tolerations) are also checked against
Kubernetes' own schema with kubernetes-validate.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from starlette.testclient import TestClient

from orchard_inference import InferenceSettings, create_app
from orchard_inference.__main__ import parse_args

from .kserve_types import KINDS
from .kserve_types import strict as _strict

ROOT = Path(__file__).resolve().parents[2]
# The KServe manifests; the other k8s/ folders (namespace, GPU, kind, prometheus-adapter) are
# checked in test_k8s_extras.py.
MANIFESTS = sorted((ROOT / "k8s" / "kserve").rglob("*.yaml"))
RUNTIME = "orchard-inference"
KUBERNETES_VERSION = "1.31.0"  # the oldest Kubernetes KServe 0.15 supports that we target


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path, document))
    return found


DOCUMENTS = _documents()


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in DOCUMENTS if document["kind"] == kind]


def _runtime() -> dict[str, Any]:
    (runtime,) = [d for d in _of_kind("ClusterServingRuntime") if d["metadata"]["name"] == RUNTIME]
    return runtime


def _services() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _of_kind("InferenceService")}


def _pod(spec: dict[str, Any], containers: list[dict[str, Any]]) -> dict[str, Any]:
    """A Pod with these containers and the scheduling fields of ``spec``, for Kubernetes'
    own schema (KServe builds its pods from the same fields)."""
    pod_spec = {k: spec[k] for k in ("nodeSelector", "tolerations", "volumes") if k in spec}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "check"},
        "spec": {**pod_spec, "containers": containers},
    }


def test_there_are_manifests_to_check() -> None:
    kinds = {document["kind"] for _, document in DOCUMENTS}
    assert {"ClusterServingRuntime", "InferenceService"} <= kinds
    assert len(_services()) >= 2


@pytest.mark.parametrize(
    ("path", "document"),
    DOCUMENTS,
    ids=[f"{p.relative_to(ROOT)}:{d['metadata']['name']}" for p, d in DOCUMENTS],
)
def test_each_manifest_matches_its_kserve_type(path: Path, document: dict[str, Any]) -> None:
    key = (document.get("apiVersion"), document.get("kind"))
    assert key in KINDS, f"{path}: unexpected {key}"
    built = _strict(document, KINDS[key], path.name)
    assert built.metadata.name == document["metadata"]["name"]


def test_the_runtime_declares_its_formats_and_protocols() -> None:
    spec = _runtime()["spec"]
    formats = {f["name"]: f for f in spec["supportedModelFormats"]}
    assert set(formats) == {"mlflow", "sklearn", "pytorch"}
    # MLflow models are picked automatically; the others only when asked for by name.
    assert formats["mlflow"]["autoSelect"] is True
    assert formats["mlflow"]["priority"] > max(
        formats[f]["priority"] for f in formats if f != "mlflow"
    )
    assert all(isinstance(f.get("priority"), int) and f["priority"] >= 1 for f in formats.values())
    assert set(spec["protocolVersions"]) == {"v1", "v2"}
    assert not spec.get("multiModel", False)


def test_the_runtime_container_is_what_kserve_starts() -> None:
    spec = _runtime()["spec"]
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"  # KServe merges the model spec into this name
    assert "command" not in container  # the image's entrypoint runs, KServe's args appended
    args = [arg.replace("{{.Name}}", "credit-risk") for arg in container["args"]]
    assert parse_args(args) == {
        "model_name": "credit-risk",
        "model_dir": "/mnt/models",
        "port": 8080,
    }
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # Every variable is one the runtime reads, with a value it accepts.
    settings = InferenceSettings(
        **{k.removeprefix("ORCHARD_INFERENCE_").lower(): v for k, v in env.items()}
    )
    assert settings.host == "0.0.0.0"
    assert set(env) <= {
        f"ORCHARD_INFERENCE_{name.upper()}" for name in InferenceSettings.model_fields
    }
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
    assert container["securityContext"]["runAsNonRoot"] is True


def test_the_runtime_runs_as_the_images_user_on_a_read_only_root() -> None:
    spec = _runtime()["spec"]
    (container,) = spec["containers"]
    security = container["securityContext"]
    # The user the image creates and the Helm chart runs every Orchard container as: another
    # UID would own nothing in the image and differ from the chart's runtime.
    chart = yaml.safe_load((ROOT / "charts" / "orchard" / "values.yaml").read_text())
    assert security["runAsUser"] == chart["global"]["securityContext"]["runAsUser"] == 10001
    dockerfile = (ROOT / "services" / "inference" / "Dockerfile").read_text()
    assert f"ARG UID={security['runAsUser']}" in dockerfile
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    # A read-only root needs a writable /tmp (MLflow downloads, caches): an emptyDir.
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_probes_and_scrape_annotations_name_routes_the_runtime_serves() -> None:
    spec = _runtime()["spec"]
    (container,) = spec["containers"]
    # Asked of a real app (no models: ready at once), so the paths are the ones it answers.
    with TestClient(create_app(InferenceSettings())) as client:
        routes = {
            path
            for path in ("/v2/health/ready", "/v2/health/live", "/metrics")
            if client.get(path).status_code == 200
        }
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in routes, probe
        assert get["port"] == 8080, probe
    annotations = spec["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations["prometheus.io/path"] in routes


def test_the_shutdown_grace_fits_the_pods_termination_grace() -> None:
    (container,) = _runtime()["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    grace = int(env["ORCHARD_INFERENCE_SHUTDOWN_GRACE_S"])
    for service in _services().values():
        pod_grace = service["spec"]["predictor"].get("terminationGracePeriodSeconds", 30)
        assert grace < pod_grace, service["metadata"]["name"]


def test_every_example_can_reach_the_runtime() -> None:
    formats = {f["name"]: f for f in _runtime()["spec"]["supportedModelFormats"]}
    for name, service in _services().items():
        model = service["spec"]["predictor"]["model"]
        declared = formats[model["modelFormat"]["name"]]
        if "version" in model["modelFormat"]:
            assert model["modelFormat"]["version"] == declared.get("version"), name
        # KServe picks a runtime only for auto-selected formats; the rest must name it.
        if not declared.get("autoSelect", False):
            assert model.get("runtime") == RUNTIME, name
        assert model.get("protocolVersion", "v1") in _runtime()["spec"]["protocolVersions"]


def test_the_cpu_example_serves_an_mlflow_model_from_storage() -> None:
    predictor = _services()["credit-risk"]["spec"]["predictor"]
    model = predictor["model"]
    assert model["modelFormat"]["name"] in {"mlflow", "sklearn"}
    assert re.match(r"^(s3|gs|https?|pvc)://", model["storageUri"])
    assert model["protocolVersion"] in _runtime()["spec"]["protocolVersions"]
    assert "nvidia.com/gpu" not in model["resources"].get("limits", {})
    assert "nodeSelector" not in predictor
    assert "tolerations" not in predictor


def test_the_gpu_example_asks_for_a_gpu_node() -> None:
    predictor = _services()["digits"]["spec"]["predictor"]
    model = predictor["model"]
    assert model["modelFormat"]["name"] == "pytorch"
    assert model["runtime"] == RUNTIME  # pytorch is not auto-selected
    assert str(model["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    assert predictor["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {
        "key": "nvidia.com/gpu",
        "operator": "Exists",
        "effect": "NoSchedule",
    } in predictor["tolerations"]


def test_kubernetes_parts_match_kubernetes_schema() -> None:
    runtime = _runtime()["spec"]
    pods = [_pod(runtime, runtime["containers"])]
    for service in _services().values():
        predictor = service["spec"]["predictor"]
        container = {"name": "kserve-container", "image": "runtime", **predictor["model"]}
        for kserve_only in (
            "modelFormat",
            "runtime",
            "runtimeVersion",
            "protocolVersion",
            "storageUri",
            "storage",
        ):
            container.pop(kserve_only, None)
        pods.append(_pod(predictor, [container]))
    for pod in pods:
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_the_strict_check_rejects_a_misspelt_field() -> None:
    runtime = _runtime()
    broken = {**runtime, "spec": {**runtime["spec"], "protocolVersion": ["v2"]}}
    with pytest.raises(AssertionError, match="protocolVersion"):
        _strict(broken, "V1alpha1ClusterServingRuntime", "broken")
