"""load_api_client: kubeconfig fallback outside a cluster (no API server is contacted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchard_retraining.k8s import KubernetesBackendError, load_api_client


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t0ken"}}],
                "contexts": [
                    {
                        "name": "dev",
                        "context": {"cluster": "c", "user": "u", "namespace": "orchard"},
                    }
                ],
                "current-context": "dev",
            }
        )
    )
    return path


def test_an_explicit_kubeconfig_is_used(tmp_path: Path) -> None:
    client = load_api_client(kubeconfig=str(_kubeconfig(tmp_path, "https://k8s.example:6443")))
    try:
        assert client.configuration.host == "https://k8s.example:6443"
    finally:
        client.close()


def test_outside_a_cluster_it_falls_back_to_the_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, "https://fallback.example:6443")))
    client = load_api_client()
    try:
        assert client.configuration.host == "https://fallback.example:6443"
    finally:
        client.close()


def test_no_configuration_at_all_raises_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(KubernetesBackendError, match="no Kubernetes configuration"):
        load_api_client()


def test_the_namespace_is_the_pods_own(tmp_path: Path) -> None:
    # Jobs and InferenceServices go where the release's Role grants rights: the pod's namespace.
    from orchard_retraining.k8s import current_namespace

    file = tmp_path / "namespace"
    file.write_text("ml-platform\n")
    assert current_namespace(source=file) == "ml-platform"
    assert current_namespace(source=tmp_path / "absent") == "orchard"
