"""The gateway's Ingress: off by default, and when on, routing every host and path to the
gateway Service's own port, with TLS as given."""

from __future__ import annotations

import subprocess

import pytest

from .chart_render import CHART, RELEASE, _helm, _of_kind, _render


def test_no_ingress_unless_asked() -> None:
    assert _of_kind(_render(CHART / "ci" / "default-values.yaml"), "Ingress") == []


def test_the_production_ingress_routes_to_the_gateway_service_with_tls() -> None:
    documents = _render(CHART / "ci" / "production-values.yaml")
    (ingress,) = _of_kind(documents, "Ingress")
    (gateway,) = [
        s
        for s in _of_kind(documents, "Service")
        if s["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    ]
    assert gateway["spec"]["type"] == "ClusterIP"  # reached through the ingress only
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"secretName": "orchard-gateway-tls", "hosts": ["orchard.example.com"]}]
    ports = {p["name"] for p in gateway["spec"]["ports"]}
    for rule in spec["rules"]:
        assert rule["host"] == "orchard.example.com"
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == gateway["metadata"]["name"]
            assert backend["port"]["name"] in ports
            assert (path["path"], path["pathType"]) == ("/", "Prefix")
    # Uploads the gateway accepts (512 MiB batch jobs) must not be cut off by the proxy.
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == (
        "512m"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["--set", "gateway.ingress.enabled=true"], "needs at least one entry"),
        (
            ["--set", "gateway.ingress.enabled=true", "--set-json",
             'gateway.ingress.hosts=[{"host": "a.example.com", "paths": [{"path": "api"}]}]'],
            "path",
        ),
    ],
)  # fmt: skip
def test_an_ingress_without_hosts_or_with_a_bad_path_is_refused(
    settings: list[str], message: str
) -> None:
    done = subprocess.run(
        [_helm(), "template", RELEASE, str(CHART), "--namespace", "orchard", *settings],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode != 0
    assert message in done.stderr
