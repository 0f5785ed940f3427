"""The Helm chart in charts/orchard: lints, renders every ci/*-values.yaml scenario, and what
it renders is valid Kubernetes that fits together.

Rendered resources are validated against Kubernetes' own schemas (kubernetes-validate,
strict: unknown fields fail), then cross-checked: Services select pods, probes and Services
name container ports, HPAs and PDBs point at workloads, the pods run under restricted Pod
Security, and retraining's Role grants exactly the API calls its Kubernetes backends make.
KServe's resources (the ClusterServingRuntime, the InferenceServices) are built strictly as
KServe SDK types instead (tests/k8s/kserve_types.py), since kubernetes-validate has no CRDs.

helm comes from ``scripts/install-helm`` (``.tools/bin/helm``) or PATH; without it these
tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import ast
import ipaddress
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .kserve_types import KINDS as KSERVE_KINDS
from .kserve_types import strict_resource

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "orchard"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
BACKENDS = ROOT / "services/retraining/src/orchard_retraining/k8s/backends.py"
KUBERNETES_VERSION = "1.33.0"  # a recent release kubernetes-validate knows
SERVICES = {"gateway": 8000, "evaluation": 8002, "retraining": 8003, "mlflow": 5000}
SHUTDOWN_GRACE_S = 20  # ServiceSettings.shutdown_grace_s, the services' default
RELEASE = "orchard-ci"
EVENTS_API = ROOT / "services/evaluation/src/orchard_evaluation/api/events.py"
GPU = "nvidia.com/gpu"


def _helm() -> str:
    local = ROOT / ".tools" / "bin" / "helm"
    found = str(local) if local.is_file() else shutil.which("helm")
    if found is None:
        reason = "helm not found: run scripts/install-helm (installs .tools/bin/helm)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _run_helm(*args: str) -> str:
    done = subprocess.run(
        [_helm(), *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@cache
def _render(scenario: Path) -> tuple[dict[str, Any], ...]:
    out = _run_helm("template", RELEASE, str(CHART), "--namespace", "orchard", "-f", str(scenario))
    return tuple(d for d in yaml.safe_load_all(out) if d)


def _of_kind(documents: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def _pod_templates(documents: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    """Each workload's pod template, by the workload's name."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]
        for d in documents
        if d["kind"] in {"Deployment", "StatefulSet"}
    }


def _all_pods(documents: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    specs = [t["spec"] for t in _pod_templates(documents).values()]
    return specs + [d["spec"] for d in _of_kind(documents, "Pod")]


scenario = pytest.mark.parametrize("values", SCENARIOS, ids=[p.name for p in SCENARIOS])


def test_the_scenarios_the_issue_names_exist() -> None:
    assert {"default", "minimal", "gpu", "serverless", "production"} <= {
        p.name.removesuffix("-values.yaml") for p in SCENARIOS
    }


@scenario
def test_helm_lint_strict_passes(values: Path) -> None:
    _run_helm("lint", "--strict", str(CHART), "-f", str(values))


def test_values_outside_the_schema_are_refused() -> None:
    done = subprocess.run(
        [_helm(), "template", RELEASE, str(CHART), "--set", "gateway.replicas=3"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode != 0
    assert "replicas" in done.stderr


@scenario
def test_every_resource_matches_the_kubernetes_schema(values: Path) -> None:
    documents = _render(values)
    assert {"Deployment", "Service", "ServiceAccount"} <= {d["kind"] for d in documents}
    for document in documents:
        if (document["apiVersion"], document["kind"]) in KSERVE_KINDS:
            strict_resource(document, document["metadata"]["name"])
        else:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@scenario
def test_each_service_runs_with_its_port_and_probes(values: Path) -> None:
    templates = _pod_templates(_render(values))
    for service, port in SERVICES.items():
        (name,) = [n for n in templates if n.endswith(f"-{service}")]
        (container,) = templates[name]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": port}, service
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in ports, (service, probe)
        if service != "mlflow":
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            env = {e["name"]: e.get("value") for e in container["env"]}
            prefix = f"ORCHARD_{service.upper()}_"
            assert env[f"{prefix}HOST"] == "0.0.0.0"
            assert env[f"{prefix}PORT"] == str(port)


@scenario
def test_every_service_selects_a_pod_and_targets_a_named_port(values: Path) -> None:
    documents = _render(values)
    templates = list(_pod_templates(documents).values())
    for service in _of_kind(documents, "Service"):
        selector = service["spec"]["selector"]
        matching = [t for t in templates if selector.items() <= t["metadata"]["labels"].items()]
        assert len(matching) == 1, service["metadata"]["name"]
        container_ports = {
            p.get("name"): p["containerPort"]
            for c in matching[0]["spec"]["containers"]
            for p in c["ports"]
        }
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert target in container_ports or target in container_ports.values(), target


@scenario
def test_autoscalers_and_budgets_point_at_workloads(values: Path) -> None:
    documents = _render(values)
    deployments = {d["metadata"]["name"]: d for d in _of_kind(documents, "Deployment")}
    for hpa in _of_kind(documents, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        assert target["name"] in deployments
        # The HPA owns the replica count; a fixed one would fight it on every upgrade.
        assert "replicas" not in deployments[target["name"]]["spec"]
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    templates = list(_pod_templates(documents).values())
    for pdb in _of_kind(documents, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= t["metadata"]["labels"].items() for t in templates)


def test_production_scales_the_gateway_on_request_rate_too() -> None:
    documents = _render(CHART / "ci" / "production-values.yaml")
    (hpa,) = [
        h
        for h in _of_kind(documents, "HorizontalPodAutoscaler")
        if h["metadata"]["name"].endswith("-gateway")
    ]
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "orchard_gateway_http_requests_per_second"


@scenario
def test_pods_meet_restricted_pod_security(values: Path) -> None:
    for pod in _all_pods(_render(values)):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert context["readOnlyRootFilesystem"] is True
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            if container["name"] in SERVICES:
                assert "/tmp" in mounts, container["name"]


@scenario
def test_shutdown_fits_in_the_termination_grace(values: Path) -> None:
    templates = _pod_templates(_render(values))
    for name, template in templates.items():
        if not any(name.endswith(f"-{s}") for s in SERVICES):
            continue
        (container,) = template["spec"]["containers"]
        sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        grace = int(
            next((v for k, v in env.items() if k.endswith("_SHUTDOWN_GRACE_S")), SHUTDOWN_GRACE_S)
        )
        assert sleep + grace < template["spec"]["terminationGracePeriodSeconds"], name


@scenario
def test_secrets_are_referenced_never_inlined(values: Path) -> None:
    documents = _render(values)
    for pod in _all_pods(documents):
        for container in pod["containers"]:
            for env in container.get("env", []):
                value = env.get("value", "")
                if "DATABASE_URL" in env["name"] or "BACKEND_STORE_URI" in env["name"]:
                    # Either a secretKeyRef, or a URL whose password Kubernetes expands.
                    assert "valueFrom" in env or "$(ORCHARD_POSTGRES_PASSWORD)" in value
                if env["name"] in {"ORCHARD_GATEWAY_API_KEYS", "ORCHARD_GATEWAY_API_KEY_PEPPER"}:
                    assert "secretKeyRef" in env["valueFrom"]
    chart_secrets = _of_kind(documents, "Secret")
    if "production" in values.name:
        assert not chart_secrets  # external database and API keys: Secrets the user owns


def test_production_uses_the_external_database_and_api_keys() -> None:
    documents = _render(CHART / "ci" / "production-values.yaml")
    assert not _of_kind(documents, "StatefulSet")
    (gateway,) = [t for n, t in _pod_templates(documents).items() if n.endswith("-gateway")]
    env = {e["name"]: e for e in gateway["spec"]["containers"][0]["env"]}
    assert env["ORCHARD_GATEWAY_AUTH_ENABLED"]["value"] == "true"
    assert env["ORCHARD_GATEWAY_API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == (
        "orchard-gateway-keys"
    )


def test_the_services_find_each_other() -> None:
    documents = _render(CHART / "ci" / "default-values.yaml")
    services = {
        s["metadata"]["name"]: s["spec"]["ports"][0]["port"] for s in _of_kind(documents, "Service")
    }
    urls = {f"http://{name}.orchard.svc:{port}" for name, port in services.items()}
    checked = 0
    for template in _pod_templates(documents).values():
        for env in template["spec"]["containers"][0]["env"]:
            if env["name"].endswith(("_URL", "TRACKING_URI")) and env.get("value", "").startswith(
                "http://"
            ):
                base = env["value"].removesuffix("/v1/routes")
                assert base in urls, env
                checked += 1
    assert checked >= 6


# --- RBAC: retraining's Role is exactly what its Kubernetes backends call ----------------

# Each Kubernetes client method the backends may call: (apiGroup, resource, verb).
API_CALLS = {
    "create_namespaced_job": ("batch", "jobs", "create"),
    "read_namespaced_job_status": ("batch", "jobs/status", "get"),
    "delete_namespaced_job": ("batch", "jobs", "delete"),
    "list_namespaced_pod": ("", "pods", "list"),
    "read_namespaced_pod_log": ("", "pods/log", "get"),
    "create_namespaced_custom_object": ("serving.kserve.io", "inferenceservices", "create"),
    "get_namespaced_custom_object": ("serving.kserve.io", "inferenceservices", "get"),
    "replace_namespaced_custom_object": ("serving.kserve.io", "inferenceservices", "update"),
    "delete_namespaced_custom_object": ("serving.kserve.io", "inferenceservices", "delete"),
}
CLIENT_ATTRIBUTES = {"_batch", "_core", "_custom"}


def _calls_in_backends() -> set[str]:
    """Methods called on the injected Kubernetes API objects in backends.py."""
    calls = set()
    for node in ast.walk(ast.parse(BACKENDS.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr in CLIENT_ATTRIBUTES
        ):
            calls.add(node.func.attr)
    return calls


def test_every_api_call_of_the_backends_is_known() -> None:
    calls = _calls_in_backends()
    assert calls, "no Kubernetes API calls found: did backends.py move?"
    assert calls <= set(API_CALLS), f"add these to API_CALLS: {sorted(calls - set(API_CALLS))}"
    # Custom objects are only ever InferenceServices (the backends' coordinates).
    assert 'KSERVE_PLURAL: Final = "inferenceservices"' in BACKENDS.read_text()


def test_the_retraining_role_grants_exactly_the_backends_calls() -> None:
    documents = _render(CHART / "ci" / "default-values.yaml")
    (role,) = _of_kind(documents, "Role")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = {API_CALLS[call] for call in _calls_in_backends()}
    assert granted == needed
    (binding,) = _of_kind(documents, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (retraining,) = [t for n, t in _pod_templates(documents).items() if n.endswith("-retraining")]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": retraining["spec"]["serviceAccountName"],
            "namespace": "orchard",
        }
    ]
    assert not _of_kind(documents, "ClusterRole")


def test_only_retraining_gets_an_api_token() -> None:
    documents = _render(CHART / "ci" / "default-values.yaml")
    for name, template in _pod_templates(documents).items():
        mounted = template["spec"].get("automountServiceAccountToken", True)
        assert mounted is name.endswith("-retraining"), name


def test_the_service_accounts_retraining_names_exist() -> None:
    documents = _render(CHART / "ci" / "default-values.yaml")
    accounts = {a["metadata"]["name"] for a in _of_kind(documents, "ServiceAccount")}
    # orchard_retraining.k8s.settings: TrainingJobSettings / InferenceServiceSettings defaults.
    assert {"orchard-training", "orchard-models"} <= accounts


# --- KServe: the serving runtime and the InferenceServices in values ----------------------


def _runtime(documents: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (runtime,) = _of_kind(documents, "ClusterServingRuntime")
    return runtime


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


# --- NetworkPolicies: exactly the flows of DESIGN §1, DNS, scraping, OTLP -----------------

NAMESPACE = "orchard"
# Endpoints outside the release: (namespace, labels, ip). An ip stands for a non-pod address.
OUTSIDE = {
    "internet": ("", {}, "203.0.113.7"),
    "apiserver": ("", {}, "10.0.0.1"),
    "database": ("", {}, "10.20.0.5"),
    "dns": ("kube-system", {"k8s-app": "kube-dns"}, None),
    "prometheus": ("monitoring", {"app": "prometheus"}, None),
    "collector": ("observability", {"app": "otel-collector"}, None),
    # An InferenceService retraining created (orchard_retraining.k8s.manifests labels).
    "candidate": (
        NAMESPACE,
        {
            "app.kubernetes.io/name": "orchard-inference",
            "app.kubernetes.io/instance": "credit-risk-v3",
            "app.kubernetes.io/component": "inference",
            "app.kubernetes.io/part-of": "orchard",
        },
        None,
    ),
}
# (source, destination, port, protocol): the flows that must be open in production-values.
ALLOWED = [
    ("internet", "gateway", 8000, "TCP"),
    ("gateway", "candidate", 8080, "TCP"),
    ("gateway", "evaluation", 8002, "TCP"),
    ("gateway", "retraining", 8003, "TCP"),
    ("evaluation", "retraining", 8003, "TCP"),
    ("evaluation", "mlflow", 5000, "TCP"),
    ("retraining", "evaluation", 8002, "TCP"),
    ("retraining", "mlflow", 5000, "TCP"),
    ("retraining", "candidate", 8080, "TCP"),
    ("retraining", "apiserver", 443, "TCP"),
    ("retraining", "apiserver", 6443, "TCP"),
    ("candidate", "evaluation", 8002, "TCP"),  # KServe's payload logger
    ("evaluation", "database", 5432, "TCP"),
    ("retraining", "database", 5432, "TCP"),
    ("mlflow", "database", 5432, "TCP"),
    ("prometheus", "gateway", 8000, "TCP"),
    ("prometheus", "evaluation", 8002, "TCP"),
    ("prometheus", "retraining", 8003, "TCP"),
    ("prometheus", "candidate", 8080, "TCP"),
    ("gateway", "collector", 4318, "TCP"),
    ("evaluation", "collector", 4318, "TCP"),
    ("retraining", "collector", 4318, "TCP"),
    *[(s, "dns", 53, p) for s in (*SERVICES, "candidate") for p in ("UDP", "TCP")],
]
DENIED = [
    ("gateway", "mlflow", 5000, "TCP"),
    ("gateway", "database", 5432, "TCP"),
    ("gateway", "internet", 443, "TCP"),
    ("gateway", "apiserver", 443, "TCP"),
    ("evaluation", "apiserver", 443, "TCP"),
    ("evaluation", "candidate", 8080, "TCP"),
    ("internet", "evaluation", 8002, "TCP"),
    ("internet", "retraining", 8003, "TCP"),
    ("internet", "mlflow", 5000, "TCP"),
    ("internet", "candidate", 8080, "TCP"),
    ("mlflow", "retraining", 8003, "TCP"),
    ("candidate", "mlflow", 5000, "TCP"),
    ("candidate", "apiserver", 443, "TCP"),
    ("prometheus", "mlflow", 5000, "TCP"),
    ("gateway", "dns", 80, "TCP"),
]
PRODUCTION_NETWORK = [
    "--set", "networkPolicy.kubeApiServer.cidrs={10.0.0.1/32}",
    "--set", "networkPolicy.externalDatabase.cidrs={10.20.0.0/16}",
    "--set", "networkPolicy.objectStorage.cidrs={198.51.100.0/24}",
]  # fmt: skip


def _endpoints(
    documents: tuple[dict[str, Any], ...],
) -> dict[str, tuple[str, dict[str, str], str | None]]:
    endpoints = dict(OUTSIDE)
    for template in _pod_templates(documents).values():
        component = template["metadata"]["labels"]["app.kubernetes.io/component"]
        endpoints[component] = (NAMESPACE, template["metadata"]["labels"], None)
    return endpoints


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # matchExpressions: not modelled
    return selector.get("matchLabels", {}).items() <= labels.items()


def _peer_matches(peer: dict[str, Any], endpoint: tuple[str, dict[str, str], str | None]) -> bool:
    namespace, labels, ip = endpoint
    if "ipBlock" in peer:
        return (
            ip is not None
            and ipaddress.ip_address(ip) in ipaddress.ip_network(peer["ipBlock"]["cidr"])
            and not any(
                ipaddress.ip_address(ip) in ipaddress.ip_network(e)
                for e in peer["ipBlock"].get("except", [])
            )
        )
    if ip is not None:
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}):
            return False
    elif namespace != NAMESPACE:
        return False
    return _selects(peer.get("podSelector", {}), labels)


def _side_allows(
    policies: list[dict[str, Any]],
    kind: str,
    me: tuple[str, dict[str, str], str | None],
    other: tuple[str, dict[str, str], str | None],
    port: int,
    protocol: str,
) -> bool:
    if me[0] != NAMESPACE or me[2] is not None:
        return True  # outside the release's namespace: not ours to police
    direction, peers = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    applying = [
        p
        for p in policies
        if kind in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], me[1])
    ]
    if not applying:
        return True
    for policy in applying:
        for rule in policy["spec"].get(direction) or []:
            peer_ok = not rule.get(peers) or any(_peer_matches(p, other) for p in rule[peers])
            port_ok = not rule.get("ports") or any(
                p.get("port") == port and p.get("protocol", "TCP") == protocol
                for p in rule["ports"]
            )
            if peer_ok and port_ok:
                return True
    return False


def _flow_is_open(documents: tuple[dict[str, Any], ...], flow: tuple[str, str, int, str]) -> bool:
    source, destination, port, protocol = flow
    endpoints = _endpoints(documents)
    policies = _of_kind(documents, "NetworkPolicy")
    src, dst = endpoints[source], endpoints[destination]
    return _side_allows(policies, "Egress", src, dst, port, protocol) and _side_allows(
        policies, "Ingress", dst, src, port, protocol
    )


@cache
def _production_network() -> tuple[dict[str, Any], ...]:
    out = _run_helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "-f", str(CHART / "ci" / "production-values.yaml"), *PRODUCTION_NETWORK,
    )  # fmt: skip
    return tuple(d for d in yaml.safe_load_all(out) if d)


@pytest.mark.parametrize("flow", ALLOWED, ids=["->".join(map(str, f)) for f in ALLOWED])
def test_each_platform_flow_is_allowed(flow: tuple[str, str, int, str]) -> None:
    assert _flow_is_open(_production_network(), flow)


@pytest.mark.parametrize("flow", DENIED, ids=["->".join(map(str, f)) for f in DENIED])
def test_nothing_else_is_opened(flow: tuple[str, str, int, str]) -> None:
    assert not _flow_is_open(_production_network(), flow)


def test_the_bundled_database_is_reached_only_by_its_clients() -> None:
    documents = _render(CHART / "ci" / "default-values.yaml")
    for source in ("evaluation", "retraining", "mlflow"):
        assert _flow_is_open(documents, (source, "postgresql", 5432, "TCP")), source
    for source in ("gateway", "internet", "candidate"):
        assert not _flow_is_open(documents, (source, "postgresql", 5432, "TCP")), source


@scenario
def test_every_release_pod_is_under_a_default_deny(values: Path) -> None:
    documents = _render(values)
    (deny,) = [
        p
        for p in _of_kind(documents, "NetworkPolicy")
        if p["metadata"]["name"].endswith("-default-deny")
    ]
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]
    for template in _pod_templates(documents).values():
        assert _selects(deny["spec"]["podSelector"], template["metadata"]["labels"])


def test_network_policies_can_be_turned_off() -> None:
    out = _run_helm("template", RELEASE, str(CHART), "--set", "networkPolicy.enabled=false")
    assert "kind: NetworkPolicy" not in out
