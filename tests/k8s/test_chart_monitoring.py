"""The chart's monitoring objects: ServiceMonitors, the PodMonitor, the PrometheusRule and the
Grafana dashboard ConfigMaps, all rendered from the files in monitoring/ (through symlinks
under charts/orchard/files/), never from copies.

No package here ships prometheus-operator's CRD schemas, so its objects are checked against a
hand-written allow-list of the CRD fields the chart uses (field names and types as in the
monitoring.coreos.com/v1 CRDs); unknown keys fail, as a misspelt field would otherwise be
pruned silently by the API server. promtool checks the rendered rules; without it that test
skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchard_retraining.k8s.manifests import inference_service
from orchard_retraining.k8s.settings import InferenceServiceSettings

from .chart_render import (
    CHART,
    PROMETHEUS_OPERATOR_API,
    RELEASE,
    _of_kind,
    _render,
    _run_helm,
)

ROOT = CHART.parents[1]
MONITORING = ROOT / "monitoring"
RULE_FILES = sorted((MONITORING / "prometheus" / "rules").glob("*.yml"))
DASHBOARD_FILES = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
# The scenarios that turn the prometheus-operator objects on (the default leaves them off).
MONITORED = [CHART / "ci" / "production-values.yaml", CHART / "ci" / "serverless-values.yaml"]
monitored = pytest.mark.parametrize("values", MONITORED, ids=[p.name for p in MONITORED])
CONFIGMAP_LIMIT = 1024 * 1024  # bytes, the API server's cap on a ConfigMap
SIDECAR_LABEL = ("grafana_dashboard", "1")  # kube-prometheus-stack's Grafana sidecar default

# --- prometheus-operator CRD fields the chart may use --------------------------------------
# A mapping is an object whose keys must be among its own; a type is a leaf.
DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
LABELS: Any = {str: str}  # any label name to a string value
METADATA = {"name": str, "namespace": str, "labels": LABELS, "annotations": LABELS}
SELECTOR = {
    "matchLabels": LABELS,
    "matchExpressions": [{"key": str, "operator": str, "values": [str]}],
}
ENDPOINT = {
    "port": str,
    "path": str,
    "interval": DURATION,
    "scrapeTimeout": DURATION,
    "relabelings": list,
    "metricRelabelings": list,
}
CRDS: dict[str, Any] = {
    "ServiceMonitor": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "jobLabel": str,
            "selector": SELECTOR,
            "namespaceSelector": {"matchNames": [str], "any": bool},
            "endpoints": [ENDPOINT],
        },
    },
    "PodMonitor": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "jobLabel": str,
            "selector": SELECTOR,
            "namespaceSelector": {"matchNames": [str], "any": bool},
            "podMetricsEndpoints": [{**ENDPOINT, "portNumber": int}],
        },
    },
    "PrometheusRule": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "groups": [
                {
                    "name": str,
                    "interval": DURATION,
                    "limit": int,
                    "labels": LABELS,
                    "query_offset": DURATION,
                    "rules": [
                        {
                            "record": str,
                            "alert": str,
                            "expr": str,
                            "for": DURATION,
                            "keep_firing_for": DURATION,
                            "labels": LABELS,
                            "annotations": LABELS,
                        }
                    ],
                }
            ]
        },
    },
}


def _conforms(value: Any, shape: Any, where: str) -> None:
    if isinstance(shape, re.Pattern):
        assert isinstance(value, str), f"{where}: {value!r} is not a string"
        assert shape.match(value), f"{where}: {value!r} is not a duration"
    elif isinstance(shape, type):
        assert isinstance(value, shape), f"{where}: {value!r} is not {shape.__name__}"
        assert shape is not int or not isinstance(value, bool), f"{where}: {value!r} is a bool"
    elif isinstance(shape, list):
        assert isinstance(value, list), f"{where}: expected a list"
        for i, item in enumerate(value):
            _conforms(item, shape[0], f"{where}[{i}]")
    elif set(shape) == {str}:
        assert isinstance(value, dict), f"{where}: expected a mapping"
        for k, v in value.items():
            _conforms(k, str, f"{where} key")
            _conforms(v, shape[str], f"{where}.{k}")
    else:
        assert isinstance(value, dict), f"{where}: expected a mapping"
        unknown = set(value) - set(shape)
        assert not unknown, f"{where}: fields the CRD does not have: {sorted(unknown)}"
        for k, v in value.items():
            _conforms(v, shape[k], f"{where}.{k}")


# --- rendering helpers ----------------------------------------------------------------------


def _render_with(*sets: str) -> list[dict[str, Any]]:
    args = [a for s in sets for a in ("--set", s)]
    out = _run_helm("template", RELEASE, str(CHART), "--namespace", "orchard", *args)
    return [d for d in yaml.safe_load_all(out) if d]


def _rule_groups(documents: Any) -> list[dict[str, Any]]:
    (rule,) = _of_kind(documents, "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def _file_groups() -> list[dict[str, Any]]:
    return [g for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]


def _dashboards(documents: Any) -> list[dict[str, Any]]:
    return [
        d
        for d in _of_kind(documents, "ConfigMap")
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "dashboards"
    ]


def _jobs_produced(documents: Any) -> dict[str, str]:
    """The job label each monitor gives its targets, by monitor name.

    A ServiceMonitor's job is its Services' value of ``jobLabel``; a PodMonitor's is the value
    its selector requires of ``jobLabel``, the only value every selected pod is sure to have.
    """
    services = _of_kind(documents, "Service")
    jobs: dict[str, str] = {}
    for monitor in _of_kind(documents, "ServiceMonitor"):
        spec = monitor["spec"]
        (service,) = _selected(services, spec["selector"]["matchLabels"])
        jobs[monitor["metadata"]["name"]] = service["metadata"]["labels"][spec["jobLabel"]]
    for monitor in _of_kind(documents, "PodMonitor"):
        spec = monitor["spec"]
        jobs[monitor["metadata"]["name"]] = spec["selector"]["matchLabels"][spec["jobLabel"]]
    return jobs


def _selected(objects: list[dict[str, Any]], match: dict[str, str]) -> list[dict[str, Any]]:
    return [o for o in objects if match.items() <= o["metadata"].get("labels", {}).items()]


def _jobs_monitoring_names() -> set[str]:
    """The job names monitoring/ is written against: the local scrape config's jobs, the job
    labels of the rules' unit-test series, job matchers in rules and dashboards, and the
    services whose orchard_<service>_http_* metrics the dashboards query by job."""
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    names = {job["job_name"] for job in config["scrape_configs"]}
    texts = [p.read_text() for p in (MONITORING / "prometheus" / "tests").glob("*.yml")]
    texts += [p.read_text() for p in (*RULE_FILES, *DASHBOARD_FILES)]
    for text in texts:
        names |= set(re.findall(r'\bjob\s*=~?\s*\\?"([a-z][a-z0-9_-]*)', text))
    for path in DASHBOARD_FILES:
        names |= set(re.findall(r"\borchard_([a-z]+)_http_request", path.read_text()))
    return names


# --- the files: symlinks, packaged as real files --------------------------------------------


def test_the_chart_reads_monitoring_through_symlinks_not_copies() -> None:
    for link, target in (
        ("rules", MONITORING / "prometheus" / "rules"),
        ("dashboards", MONITORING / "grafana" / "dashboards"),
    ):
        path = CHART / "files" / link
        assert path.is_symlink(), f"{path} must link to {target}, not copy it"
        assert path.resolve() == target.resolve()
        # Relative, so the link holds in any checkout.
        assert not os.readlink(path).startswith("/")


def test_helm_package_holds_the_real_files(tmp_path: Path) -> None:
    _run_helm("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("orchard-*.tgz")
    expected = {f"orchard/files/rules/{p.name}": p for p in RULE_FILES} | {
        f"orchard/files/dashboards/{p.name}": p for p in DASHBOARD_FILES
    }
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers() if m.name.startswith("orchard/files/")}
        assert set(members) == set(expected)
        for name, source in expected.items():
            assert members[name].isfile(), f"{name} is packaged as a link"
            packed = tar.extractfile(members[name])
            assert packed is not None, name
            assert packed.read() == source.read_bytes(), name


# --- PrometheusRule -------------------------------------------------------------------------


@monitored
def test_the_rule_groups_are_those_of_monitoring(values: Path) -> None:
    groups = _rule_groups(_render(values))
    assert groups == _file_groups()
    # Read as data, the rules' own templates reach Prometheus as written.
    annotations = [a for g in groups for r in g["rules"] for a in r.get("annotations", {}).values()]
    assert any("{{ $labels.job }}" in a for a in annotations)


def test_promtool_accepts_the_rendered_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        reason = "promtool is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must have it (.ci/run installs it)")
        pytest.skip(reason)
    rules = tmp_path / "rendered.yml"
    rules.write_text(yaml.safe_dump({"groups": _rule_groups(_render(MONITORED[0]))}))
    done = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- ServiceMonitors and the PodMonitor -----------------------------------------------------


@monitored
def test_each_service_monitor_selects_one_service_and_names_its_port(values: Path) -> None:
    documents = _render(values)
    services = _of_kind(documents, "Service")
    monitors = _of_kind(documents, "ServiceMonitor")
    assert len(monitors) == 3  # gateway, evaluation, retraining; MLflow has no /metrics
    for monitor in monitors:
        spec = monitor["spec"]
        assert "namespaceSelector" not in spec  # its own namespace: the Services'
        (service,) = _selected(services, spec["selector"]["matchLabels"])
        assert service["metadata"]["namespace"] == monitor["metadata"]["namespace"]
        ports = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] in ports
            assert endpoint["path"] == "/metrics"


@monitored
def test_the_jobs_are_the_ones_the_rules_and_dashboards_use(values: Path) -> None:
    produced = _jobs_produced(_render(values))
    expected = _jobs_monitoring_names()
    assert expected == {"gateway", "evaluation", "retraining", "inference"}
    assert set(produced.values()) == expected, produced
    assert len(produced) == len(expected), "two monitors would give one job two sources"


@monitored
def test_the_pod_monitor_scrapes_every_orchard_inference_service_pod(values: Path) -> None:
    documents = _render(values)
    (monitor,) = _of_kind(documents, "PodMonitor")
    spec = monitor["spec"]
    match = spec["selector"]["matchLabels"]
    runtimes = _of_kind(documents, "ClusterServingRuntime")
    assert runtimes
    # KServe gives every predictor pod the runtime's labels and its InferenceService's.
    for runtime in runtimes:
        assert match.items() <= runtime["spec"]["labels"].items(), runtime["metadata"]["name"]
    created = inference_service(
        InferenceServiceSettings(),
        model="credit-risk",
        version="3",
        storage_uri="s3://orchard-mlflow/artifacts/1/models/m/artifacts",
        model_format="mlflow",
    )
    chart_made = _of_kind(documents, "InferenceService")
    for isvc in [created, *chart_made]:
        assert match.items() <= isvc["metadata"]["labels"].items(), isvc["metadata"]["name"]
    assert spec["selector"]["matchExpressions"] == [
        {"key": "serving.kserve.io/inferenceservice", "operator": "Exists"}
    ]
    (endpoint,) = spec["podMetricsEndpoints"]
    # By number: Knative renames the port in Serverless pods, so a name would miss them.
    assert "port" not in endpoint
    for runtime in runtimes:
        (container,) = runtime["spec"]["containers"]
        assert endpoint["portNumber"] in {p["containerPort"] for p in container["ports"]}
    assert endpoint["path"] == "/metrics"


def test_production_monitors_carry_the_prometheus_selector_label() -> None:
    documents = _render(MONITORED[0])
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        for document in _of_kind(documents, kind):
            assert document["metadata"]["labels"]["release"] == "kube-prometheus-stack"


@monitored
def test_the_crd_objects_use_only_fields_the_crds_have(values: Path) -> None:
    documents = [d for d in _render(values) if d["apiVersion"] == PROMETHEUS_OPERATOR_API]
    assert {d["kind"] for d in documents} == set(CRDS)
    for document in documents:
        _conforms(document, CRDS[document["kind"]], document["kind"])
        for group in document["spec"].get("groups", []):
            for rule in group["rules"]:
                assert ("record" in rule) != ("alert" in rule), rule
                assert "expr" in rule, rule


# --- dashboards -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values", [CHART / "ci" / "default-values.yaml", MONITORED[0]], ids=["default", "production"]
)
def test_each_dashboard_is_a_sidecar_configmap_holding_the_file(values: Path) -> None:
    configmaps = _dashboards(_render(values))
    assert len(configmaps) == len(DASHBOARD_FILES) > 0
    by_key = {key: cm for cm in configmaps for key in cm["data"]}
    assert set(by_key) == {p.name for p in DASHBOARD_FILES}
    for path in DASHBOARD_FILES:
        configmap = by_key[path.name]
        assert configmap["data"] == {path.name: path.read_text(encoding="utf-8")}
        assert configmap["data"][path.name].encode() == path.read_bytes()
        label, value = SIDECAR_LABEL
        assert configmap["metadata"]["labels"][label] == value
        assert len(json.dumps(configmap).encode()) < CONFIGMAP_LIMIT


def test_the_dashboard_folder_and_namespace_are_set_from_values() -> None:
    # No folder, no annotation: the sidecar then files them in its default folder.
    assert not any("annotations" in c["metadata"] for c in _dashboards(_render_with()))
    configmaps = _dashboards(
        _render_with(
            "monitoring.dashboards.folder=Orchard",
            "monitoring.dashboards.namespace=monitoring",
            "monitoring.dashboards.label=dashboards",
            "monitoring.dashboards.labelValue=orchard",
        )
    )
    assert configmaps
    for configmap in configmaps:
        assert configmap["metadata"]["annotations"] == {"grafana_folder": "Orchard"}
        assert configmap["metadata"]["namespace"] == "monitoring"
        assert configmap["metadata"]["labels"]["dashboards"] == "orchard"


# --- off ------------------------------------------------------------------------------------


def test_the_prometheus_operator_objects_are_off_by_default() -> None:
    documents = _render(CHART / "ci" / "default-values.yaml")
    assert not [d for d in documents if d["apiVersion"] == PROMETHEUS_OPERATOR_API]


def test_with_monitoring_disabled_nothing_of_it_renders() -> None:
    documents = _render_with(
        "monitoring.serviceMonitor.enabled=false",
        "monitoring.podMonitor.enabled=false",
        "monitoring.prometheusRule.enabled=false",
        "monitoring.dashboards.enabled=false",
    )
    assert not [d for d in documents if d["apiVersion"] == PROMETHEUS_OPERATOR_API]
    assert not _dashboards(documents)
    assert not [
        d
        for d in _of_kind(documents, "ConfigMap")
        if "grafana_dashboard" in d["metadata"].get("labels", {})
    ]
