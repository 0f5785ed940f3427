"""The cluster extras in k8s/ outside kserve/: every file, the namespace and
prometheus-adapter (GPU pools and kind: test_k8s_gpu_kind.py).

Each of these files is read by a tool that is not here (the API server, prometheus-adapter,
the NVIDIA device plugin, eksctl, kind), so the tests check what those tools would trip over
and what the rest of Orchard relies on: the names and labels the chart, the gateway and
retraining use on the other side.

promtool comes from Debian's ``prometheus`` package; without it the PromQL checks skip,
except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from orchard_core import new_registry
from orchard_gateway.app import create_app
from orchard_gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
EXTRAS = ("namespace", "prometheus-adapter", "gpu", "kind")
NAMESPACE = K8S / "namespace" / "namespace.yaml"
ADAPTER_VALUES = K8S / "prometheus-adapter" / "values.yaml"
GPU = K8S / "gpu"
KIND_CONFIG = K8S / "kind" / "kind-config.yaml"
HPA_TEMPLATE = ROOT / "charts" / "orchard" / "templates" / "hpa.yaml"
CHART_GPU_VALUES = ROOT / "charts" / "orchard" / "ci" / "gpu-values.yaml"
PSA = "pod-security.kubernetes.io"
NODE_PORTS = range(30000, 32768)


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _extra_files() -> list[Path]:
    return sorted(path for folder in EXTRAS for path in (K8S / folder).rglob("*.yaml"))


def _kubernetes_version() -> str:
    """The Kubernetes version the namespace pins Pod Security to: the one we validate at."""
    pinned = _load(NAMESPACE)["metadata"]["labels"][f"{PSA}/enforce-version"]
    match = re.fullmatch(r"v(1\.\d+)", pinned)
    assert match, f"enforce-version must be a concrete 'v1.N', got {pinned!r}"
    return f"{match.group(1)}.0"


def _validate(document: Mapping[str, Any]) -> None:
    kubernetes_validate.validate(dict(document), _kubernetes_version(), strict=True)


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must have it (.ci/run installs it)")
        pytest.skip(f"{reason}: PromQL of the adapter rule not checked")
    return path


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False
    )


# --- every file ---------------------------------------------------------------------------


def test_every_folder_has_a_readme_and_the_index_names_it() -> None:
    index = (K8S / "README.md").read_text(encoding="utf-8")
    for folder in sorted(p for p in K8S.iterdir() if p.is_dir()):
        assert (folder / "README.md").is_file(), f"k8s/{folder.name} has no README.md"
        assert f"[`{folder.name}/`]({folder.name}/)" in index, f"k8s/README.md omits {folder.name}"


@pytest.mark.parametrize("path", _extra_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_each_file_is_yaml_with_content(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    assert documents, f"{path} is empty"
    assert all(isinstance(d, dict) for d in documents), f"{path}: a document is not a mapping"


# --- namespace ----------------------------------------------------------------------------


def test_the_namespace_is_a_valid_namespace_object() -> None:
    namespace = _load(NAMESPACE)
    _validate(namespace)
    assert (namespace["apiVersion"], namespace["kind"]) == ("v1", "Namespace")
    # The chart, retraining's settings and the KServe examples all deploy into it.
    assert namespace["metadata"]["name"] == "orchard"


def test_the_namespace_enforces_audits_and_warns_restricted() -> None:
    labels = _load(NAMESPACE)["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"{PSA}/{mode}"] == "restricted", mode
    # Enforcement pinned (an upgrade must not tighten it silently); warnings look ahead.
    assert labels[f"{PSA}/enforce-version"] != "latest"
    assert labels[f"{PSA}/audit-version"] == "latest"
    assert labels[f"{PSA}/warn-version"] == "latest"
    minor = int(_kubernetes_version().split(".")[1])
    assert minor >= 25, "Pod Security Admission is stable from Kubernetes 1.25"


def _restricted_violations(container: Mapping[str, Any], pod: Mapping[str, Any]) -> list[str]:
    """What the restricted Pod Security Standard refuses in one container (the rules a
    container spec can break; pod-level fields may satisfy the shared ones)."""
    context = container.get("securityContext") or {}
    found = []
    if context.get("allowPrivilegeEscalation") is not False:
        found.append("allowPrivilegeEscalation must be false")
    if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
        found.append("capabilities must drop ALL")
    if set((context.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
        found.append("only NET_BIND_SERVICE may be added")
    if context.get("privileged"):
        found.append("privileged is forbidden")
    if not context.get("runAsNonRoot", pod.get("runAsNonRoot")):
        found.append("runAsNonRoot must be true")
    if context.get("runAsUser", pod.get("runAsUser")) == 0:
        found.append("runAsUser must not be 0")
    seccomp = (context.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        found.append("seccompProfile must be RuntimeDefault or Localhost")
    if any(port.get("hostPort") for port in container.get("ports") or []):
        found.append("hostPort is forbidden")
    return found


def test_the_kserve_runtime_is_admitted_by_the_restricted_namespace() -> None:
    # KServe copies these containers into every predictor pod and sets no pod-level
    # security context of its own: a gap here keeps every InferenceService from starting.
    runtimes = [
        document
        for path in sorted((K8S / "kserve").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if document and document["kind"] in ("ClusterServingRuntime", "ServingRuntime")
    ]
    assert runtimes
    for runtime in runtimes:
        pod = runtime["spec"].get("securityContext") or {}
        for container in runtime["spec"]["containers"]:
            assert not _restricted_violations(container, pod), (
                runtime["metadata"]["name"],
                _restricted_violations(container, pod),
            )


def test_the_restricted_check_catches_what_the_api_server_would_refuse() -> None:
    assert _restricted_violations({"name": "c"}, {}) == [
        "allowPrivilegeEscalation must be false",
        "capabilities must drop ALL",
        "runAsNonRoot must be true",
        "seccompProfile must be RuntimeDefault or Localhost",
    ]


# --- prometheus-adapter -------------------------------------------------------------------


def _adapter_rule() -> dict[str, Any]:
    values = _load(ADAPTER_VALUES)
    (rule,) = [
        r
        for r in values["rules"]["custom"]
        if r["name"]["as"] == "orchard_gateway_http_requests_per_second"
    ]
    return dict(rule)


def _series_name(rule: Mapping[str, Any]) -> str:
    match = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["seriesQuery"])
    assert match, f"seriesQuery does not start with a metric name: {rule['seriesQuery']!r}"
    return match.group(0)


def _exposed_name(rule: Mapping[str, Any]) -> str:
    """The custom metric name the adapter derives from the series, as it does: ``as`` is
    the expansion of ``matches`` over the series name (``$1``-style groups allowed)."""
    name = rule["name"]
    series = _series_name(rule)
    match = re.search(name.get("matches", "(.*)"), series)
    assert match, f"name.matches {name.get('matches')!r} does not match {series}"
    template = re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", name.get("as") or "${1}")
    return match.expand(template)


def _hpa_metric_names() -> list[str]:
    template = HPA_TEMPLATE.read_text(encoding="utf-8")
    return re.findall(r"type: Pods\s+pods:\s+metric:\s+name:\s*([A-Za-z0-9_:]+)", template)


def _gateway_requests(paths: tuple[str, ...]) -> CollectorRegistry:
    """A fresh registry of a real gateway app that has answered GETs to ``paths``."""
    registry = new_registry()
    # No lifespan: the observability middleware records requests without a route table.
    client = TestClient(create_app(GatewaySettings(), registry=registry))
    try:
        for path in paths:
            client.get(path)
    finally:
        client.close()
    return registry


def _excluded_routes(rule: Mapping[str, Any]) -> list[str]:
    match = re.search(r'route!~"([^"]*)"', rule["metricsQuery"])
    return match.group(1).split("|") if match else []


def _metrics_query(rule: Mapping[str, Any], matchers: str, group_by: str) -> str:
    """``metricsQuery`` as the adapter sends it for one HPA request."""
    query: str = rule["metricsQuery"]
    return (
        query.replace("<<.Series>>", _series_name(rule))
        .replace("<<.LabelMatchers>>", matchers)
        .replace("<<.GroupBy>>", group_by)
    )


def test_the_adapter_serves_the_metric_the_chart_hpa_asks_for() -> None:
    asked = _hpa_metric_names()
    assert asked, f"no Pods metric found in {HPA_TEMPLATE}"
    assert _exposed_name(_adapter_rule()) in asked
    assert set(asked) == {_exposed_name(_adapter_rule())}


def test_the_adapter_does_not_publish_every_counter() -> None:
    assert _load(ADAPTER_VALUES)["rules"]["default"] is False


def test_the_rule_reads_the_counter_the_gateway_records() -> None:
    rule = _adapter_rule()
    registry = _gateway_requests(("/healthz",))
    samples = {
        sample.name: sample.labels
        for family in registry.collect()
        if family.type == "counter"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    series = _series_name(rule)
    assert series in samples, f"the gateway records no counter {series}: {sorted(samples)}"
    # namespace and pod come from Prometheus' Kubernetes discovery; a label of the same name
    # on the counter would be renamed exported_* and the adapter would match nothing.
    assert not {"namespace", "pod"} & set(samples[series])
    assert 'namespace!=""' in rule["seriesQuery"]
    assert 'pod!=""' in rule["seriesQuery"]
    overrides = rule["resources"]["overrides"]
    assert overrides == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    # Any label the query filters on must be one the counter has.
    filtered = set(re.findall(r"[,{](\w+)\s*!?[=~]", rule["metricsQuery"]))
    assert filtered <= set(samples[series]), filtered - set(samples[series])


def test_the_excluded_routes_are_the_labels_the_gateway_gives_probes_and_scrapes() -> None:
    excluded = _excluded_routes(_adapter_rule())
    assert set(excluded) == {"/healthz", "/readyz", "/metrics"}
    registry = _gateway_requests(tuple(excluded))
    for route in excluded:
        recorded = [
            sample
            for family in registry.collect()
            for sample in family.samples
            if sample.name == _series_name(_adapter_rule()) and sample.labels["route"] == route
        ]
        assert recorded, f"the gateway records no route={route!r}: the filter would miss it"


def test_the_metrics_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = _promtool()
    # What the adapter substitutes for an HPA asking about two gateway pods.
    expr = _metrics_query(_adapter_rule(), 'namespace="orchard",pod=~"gw-a|gw-b"', "pod")
    assert "<<" not in expr, f"a template variable the adapter does not know: {expr}"
    rules = tmp_path / "adapter.yml"
    record = "adapter:orchard_gateway_http_requests_per_second"
    group = {"name": "adapter", "rules": [{"record": record, "expr": expr}]}
    rules.write_text(yaml.safe_dump({"groups": [group]}))
    result = _run(promtool, "check", "rules", rules)
    assert result.returncode == 0, f"{expr}\n{result.stdout}{result.stderr}"


def test_the_metrics_query_gives_requests_per_second_per_pod(tmp_path: Path) -> None:
    promtool = _promtool()
    rule = _adapter_rule()
    expr = _metrics_query(rule, 'namespace="orchard",pod=~"gw-a|gw-b"', "pod")
    series = _series_name(rule)
    infer = 'method="POST",route="/v2/models/{model}/infer",code="200",namespace="orchard"'
    probe = 'method="GET",route="/healthz",code="200",namespace="orchard"'
    # Scraped every 30s: gw-a serves 2 requests/s, gw-b 1/s; probes on gw-a must not count.
    tests = {
        "rule_files": [],
        "evaluation_interval": "30s",
        "tests": [
            {
                "interval": "30s",
                "input_series": [
                    {"series": f'{series}{{{infer},pod="gw-a"}}', "values": "0+60x20"},
                    {"series": f'{series}{{{infer},pod="gw-b"}}', "values": "0+30x20"},
                    {"series": f'{series}{{{probe},pod="gw-a"}}', "values": "0+300x20"},
                    {"series": f'{series}{{{infer},pod="other"}}', "values": "0+90x20"},
                ],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "8m",
                        "exp_samples": [
                            {"labels": '{pod="gw-a"}', "value": 2},
                            {"labels": '{pod="gw-b"}', "value": 1},
                        ],
                    }
                ],
            }
        ],
    }
    test_file = tmp_path / "adapter_test.yml"
    test_file.write_text(yaml.safe_dump(tests))
    result = _run(promtool, "test", "rules", test_file)
    assert result.returncode == 0, f"{expr}\n{result.stdout}{result.stderr}"
