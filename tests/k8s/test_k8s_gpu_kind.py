"""The GPU node pool examples and time-slicing config in k8s/gpu/, and the kind cluster in
k8s/kind/: what the NVIDIA device plugin, eksctl and kind would trip over, and that GPU nodes
are where the chart's and retraining's GPU pods land."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml

from orchard_gateway.settings import GatewaySettings
from orchard_retraining.k8s.settings import GpuSettings

from .test_k8s_extras import (
    CHART_GPU_VALUES,
    GPU,
    K8S,
    KIND_CONFIG,
    NAMESPACE,
    NODE_PORTS,
    _kubernetes_version,
    _load,
    _validate,
)

# --- gpu ----------------------------------------------------------------------------------


def _time_slicing() -> dict[str, Any]:
    return dict(_load(GPU / "time-slicing-config.yaml"))


def _device_plugin_configs() -> dict[str, Any]:
    return {key: yaml.safe_load(text) for key, text in _time_slicing()["data"].items()}


def test_the_time_slicing_configmap_is_a_valid_configmap() -> None:
    configmap = _time_slicing()
    _validate(configmap)
    assert (configmap["apiVersion"], configmap["kind"]) == ("v1", "ConfigMap")
    # The operator's privileged pods read it; it cannot live in the restricted namespace.
    assert configmap["metadata"]["namespace"] != _load(NAMESPACE)["metadata"]["name"]


def test_time_slicing_shares_the_gpu_resource_orchard_requests() -> None:
    configs = _device_plugin_configs()
    assert configs
    for key, config in configs.items():
        assert config["version"] == "v1", key
        slicing = config["sharing"]["timeSlicing"]
        resources = {r["name"]: r for r in slicing["resources"]}
        # The name pods ask for: renamed (nvidia.com/gpu.shared), they would stay Pending.
        assert set(resources) == {GpuSettings().resource_name}, key
        assert slicing.get("renameByDefault", False) is False, key
        replicas = resources[GpuSettings().resource_name]["replicas"]
        assert isinstance(replicas, int), key
        assert replicas >= 2, key


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("clusterpolicy-patch.yaml", ("spec", "devicePlugin", "config")),
        ("gpu-operator-values.yaml", ("devicePlugin", "config")),
    ],
)
def test_the_operator_is_pointed_at_the_configmap(path: str, where: tuple[str, ...]) -> None:
    config: Any = _load(GPU / path)
    for key in where:
        config = config[key]
    assert config["name"] == _time_slicing()["metadata"]["name"]
    assert config["default"] in _time_slicing()["data"]


def _eks_gpu_groups() -> list[dict[str, Any]]:
    cluster = _load(GPU / "eks-cluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("eksctl.io/v1alpha5", "ClusterConfig")
    groups = cluster.get("managedNodeGroups", []) + cluster.get("nodeGroups", [])
    return [g for g in groups if g.get("taints")]


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' rule: does ``toleration`` let a pod onto a node with ``taint``?"""
    if toleration.get("effect") not in (None, "", taint["effect"]):
        return False
    if toleration.get("key") in (None, ""):
        return toleration.get("operator") == "Exists"
    if toleration["key"] != taint["key"]:
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return True
    return bool(toleration.get("value", "") == taint.get("value", ""))


def _chart_gpu_placements() -> Iterator[tuple[str, Mapping[str, str], list[dict[str, Any]]]]:
    for model in _load(CHART_GPU_VALUES)["kserve"]["models"]:
        gpu = model.get("gpu") or {}
        if gpu.get("enabled"):
            yield f"chart {model['name']}", gpu["nodeSelector"], gpu["tolerations"]
    settings = GpuSettings()
    yield (
        "retraining GpuSettings",
        settings.node_selector,
        [t.as_dict() for t in settings.tolerations],
    )


def test_eks_gpu_nodes_are_where_orchard_gpu_pods_land() -> None:
    groups = _eks_gpu_groups()
    assert groups, "eks-cluster.yaml has no tainted (GPU) node group"
    placements = list(_chart_gpu_placements())
    assert len(placements) >= 2, "the chart's gpu-values.yaml has no GPU model"
    for group in groups:
        for who, selector, tolerations in placements:
            missing = {k: v for k, v in selector.items() if group["labels"].get(k) != v}
            assert not missing, f"{group['name']}: {who} selects {missing}, not on the nodes"
            for taint in group["taints"]:
                assert any(_tolerates(t, taint) for t in tolerations), (
                    f"{group['name']}: {who} does not tolerate {taint}"
                )


def test_eks_keeps_an_untainted_group_for_everything_else() -> None:
    cluster = _load(GPU / "eks-cluster.yaml")
    groups = cluster.get("managedNodeGroups", []) + cluster.get("nodeGroups", [])
    assert any(not g.get("taints") for g in groups), "no node group for CPU-only pods"


def test_eks_autoscaler_tags_describe_the_gpu_nodes() -> None:
    # Scaling a group up from zero, the cluster-autoscaler only knows what these tags say.
    prefix = "k8s.io/cluster-autoscaler/node-template"
    (replicas,) = {
        r["replicas"]
        for config in _device_plugin_configs().values()
        for r in config["sharing"]["timeSlicing"]["resources"]
    }
    for group in _eks_gpu_groups():
        tags = group.get("tags", {})
        assert group.get("propagateASGTags") is True, group["name"]
        for key, value in group["labels"].items():
            assert tags.get(f"{prefix}/label/{key}") == value, (group["name"], key)
        for taint in group["taints"]:
            expected = f"{taint.get('value', '')}:{taint['effect']}"
            assert tags.get(f"{prefix}/taint/{taint['key']}") == expected, group["name"]
        gpus = int(tags[f"{prefix}/resources/{GpuSettings().resource_name}"])
        assert gpus > 0, group["name"]
        assert gpus % replicas == 0, f"{group['name']}: {gpus} GPUs, {replicas} replicas each"


def test_the_toleration_check_follows_kubernetes_rules() -> None:
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    assert _tolerates({"key": "nvidia.com/gpu", "operator": "Exists"}, taint)
    assert _tolerates({"key": "nvidia.com/gpu", "value": "present"}, taint)
    assert not _tolerates({"key": "nvidia.com/gpu", "value": "true"}, taint)
    assert not _tolerates(
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, taint
    )
    assert not _tolerates({"key": "gpu", "operator": "Exists"}, taint)


# --- kind ---------------------------------------------------------------------------------


def test_the_kind_config_is_a_kind_cluster_with_one_control_plane() -> None:
    config = _load(KIND_CONFIG)
    assert (config["apiVersion"], config["kind"]) == ("kind.x-k8s.io/v1alpha4", "Cluster")
    roles = [node["role"] for node in config["nodes"]]
    assert roles.count("control-plane") == 1, roles
    assert set(roles) <= {"control-plane", "worker"}
    assert "worker" in roles


def test_kind_nodes_run_one_pinned_image() -> None:
    images = {node.get("image") for node in _load(KIND_CONFIG)["nodes"]}
    (image,) = images
    assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", image), image
    # The Kubernetes the namespace pins Pod Security to, so what kind admits a cloud does too.
    assert image.startswith(f"kindest/node:v{_kubernetes_version()}@"), image


def test_kind_maps_the_gateway_port_to_a_node_port_on_loopback() -> None:
    (control_plane,) = [n for n in _load(KIND_CONFIG)["nodes"] if n["role"] == "control-plane"]
    mappings = control_plane["extraPortMappings"]
    host_ports = [m["hostPort"] for m in mappings]
    assert len(host_ports) == len(set(host_ports)), host_ports
    assert all(m.get("listenAddress") == "127.0.0.1" for m in mappings)
    by_host = {m["hostPort"]: m["containerPort"] for m in mappings}
    # The gateway's own default port, so clients configured for `orchard up` just work.
    gateway_port = GatewaySettings().port
    assert by_host[gateway_port] in NODE_PORTS
    readme = (K8S / "kind" / "README.md").read_text(encoding="utf-8")
    assert f'"nodePort":{by_host[gateway_port]}' in readme, "README pins another nodePort"
