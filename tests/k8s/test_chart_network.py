"""The chart's NetworkPolicies: exactly the flows of DESIGN §1, DNS, scraping and OTLP,
checked by a small evaluator over flows that must be open and flows that must stay closed."""

from __future__ import annotations

import ipaddress
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from .chart_render import (
    CHART,
    RELEASE,
    SERVICES,
    _of_kind,
    _pod_templates,
    _render,
    _run_helm,
    scenario,
)

# --- NetworkPolicies: exactly the flows of DESIGN §1, DNS, scraping, OTLP -----------------

NAMESPACE = "orchard"
# Endpoints outside the release: (namespace, labels, ip). An ip stands for a non-pod address.
OUTSIDE = {
    "internet": ("", {}, "203.0.113.7"),
    "apiserver": ("", {}, "10.0.0.1"),
    "database": ("", {}, "10.20.0.5"),
    "dns": ("kube-system", {"k8s-app": "kube-dns"}, None),
    "prometheus": ("monitoring", {"app": "prometheus"}, None),
    "alertmanager": ("monitoring", {"app": "alertmanager"}, None),
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
    # A training Job's pod (orchard_retraining.k8s.manifests labels).
    "training": (
        NAMESPACE,
        {
            "app.kubernetes.io/name": "orchard-training",
            "app.kubernetes.io/instance": "train-credit-risk-7",
            "app.kubernetes.io/component": "training",
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
    ("candidate", "mlflow", 5000, "TCP"),  # the registry runtime loads models:/ from MLflow
    ("training", "evaluation", 8002, "TCP"),  # the labelled production export
    ("alertmanager", "retraining", 8003, "TCP"),  # drift and quality alerts' webhook
    ("training", "mlflow", 5000, "TCP"),
    ("training", "collector", 4318, "TCP"),
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
    *[(s, "dns", 53, p) for s in (*SERVICES, "candidate", "training") for p in ("UDP", "TCP")],
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
    ("candidate", "database", 5432, "TCP"),
    ("training", "database", 5432, "TCP"),
    ("alertmanager", "mlflow", 5000, "TCP"),
    ("training", "apiserver", 443, "TCP"),
    ("training", "internet", 443, "TCP"),
    ("training", "retraining", 8003, "TCP"),
    ("gateway", "training", 8000, "TCP"),
    ("internet", "training", 8000, "TCP"),
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
