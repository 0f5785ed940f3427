"""The Helm chart in charts/orchard: lints, renders every ci/*-values.yaml scenario, and what
it renders is valid Kubernetes that fits together.

Rendered resources are validated against Kubernetes' own schemas (kubernetes-validate,
strict: unknown fields fail), then cross-checked: Services select pods, probes and Services
name container ports, HPAs and PDBs point at workloads, the pods run under restricted Pod
Security, and retraining's Role grants exactly the API calls its Kubernetes backends make.
KServe's resources (the ClusterServingRuntime, the InferenceServices) are built strictly as
KServe SDK types instead (test_chart_kserve.py), since kubernetes-validate has no CRDs; the
NetworkPolicies are checked flow by flow in test_chart_network.py.

helm comes from ``scripts/install-helm`` (``.tools/bin/helm``) or PATH; without it these
tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import kubernetes_validate
import yaml

from .chart_render import (
    BACKENDS,
    CHART,
    KUBERNETES_VERSION,
    PROMETHEUS_OPERATOR_API,
    RELEASE,
    SCENARIOS,
    SERVICES,
    SHUTDOWN_GRACE_S,
    _all_pods,
    _helm,
    _of_kind,
    _pod_templates,
    _render,
    _run_helm,
    scenario,
)
from .kserve_types import KINDS as KSERVE_KINDS
from .kserve_types import strict_resource


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
        elif document["apiVersion"] == PROMETHEUS_OPERATOR_API:
            continue  # no schema here: test_chart_monitoring.py checks them field by field
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


def test_service_accounts_carry_the_pull_secrets_for_pods_the_chart_does_not_template() -> None:
    # Training Jobs and InferenceServices are created by retraining and KServe, not the chart:
    # only their ServiceAccounts can give them the registry credentials.
    out = _run_helm(
        "template", RELEASE, str(CHART), "--namespace", "orchard",
        "--set", "global.imagePullSecrets[0].name=regcred",
    )  # fmt: skip
    accounts = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all(out)
        if d and d["kind"] == "ServiceAccount"
    }
    for name in ("orchard-training", "orchard-models"):
        assert accounts[name]["imagePullSecrets"] == [{"name": "regcred"}], name
