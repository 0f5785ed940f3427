"""Settings for the Kubernetes manifests: frozen dataclasses, validated on construction.

A bad value raises :class:`ValueError` naming the field and what it should look like, so the
retraining service stops at start-up instead of failing on the first submitted run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal

from kubernetes.utils.quantity import parse_quantity

from orchard_retraining.k8s.names import is_dns_label, is_label_value

__all__ = [
    "ContainerResources",
    "GpuSettings",
    "InferenceServiceSettings",
    "Toleration",
    "TrainingJobSettings",
]

DeploymentMode = Literal["RawDeployment", "Serverless"]
_SUBDOMAIN: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_KEY: Final = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_URL: Final = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_EFFECTS: Final = (None, "NoSchedule", "PreferNoSchedule", "NoExecute")


def _check_name(what: str, value: str) -> None:
    if not is_dns_label(value):
        raise ValueError(
            f"{what} must be a DNS-1123 label (lowercase letters, digits and '-', "
            f"at most 63 characters), got {value!r}"
        )


def _check_subdomain(what: str, value: str) -> None:
    if not (0 < len(value) <= 253 and _SUBDOMAIN.match(value)):
        raise ValueError(f"{what} must be a DNS-1123 subdomain, got {value!r}")


def _check_labels(what: str, labels: Mapping[str, str]) -> None:
    for key, value in labels.items():
        if len(key) > 253 or not _LABEL_KEY.match(key) or not is_label_value(value):
            raise ValueError(f"{what} has an invalid label {key!r}: {value!r}")


def _quantity(what: str, value: str) -> Decimal:
    try:
        quantity: Decimal = parse_quantity(value)  # type: ignore[no-untyped-call]
        return quantity
    except ValueError:
        raise ValueError(
            f"{what} must be a Kubernetes quantity like '500m' or '2Gi', got {value!r}"
        ) from None


@dataclass(frozen=True)
class ContainerResources:
    """CPU and memory for one container (Kubernetes quantities); ``None`` leaves it unset."""

    cpu_request: str | None = "500m"
    memory_request: str | None = "1Gi"
    cpu_limit: str | None = None
    memory_limit: str | None = "2Gi"

    def __post_init__(self) -> None:
        for kind in ("cpu", "memory"):
            request: str | None = getattr(self, f"{kind}_request")
            limit: str | None = getattr(self, f"{kind}_limit")
            low = None if request is None else _quantity(f"{kind}_request", request)
            high = None if limit is None else _quantity(f"{kind}_limit", limit)
            if low is not None and high is not None and low > high:
                raise ValueError(f"{kind}_request ({request}) exceeds {kind}_limit ({limit})")

    def as_dict(self, extra: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
        """The ``resources`` block, with ``extra`` (e.g. GPUs) added to requests and limits."""
        requests = {"cpu": self.cpu_request, "memory": self.memory_request}
        limits = {"cpu": self.cpu_limit, "memory": self.memory_limit}
        out: dict[str, dict[str, str]] = {}
        for key, values in (("requests", requests), ("limits", limits)):
            block = {k: v for k, v in values.items() if v is not None} | dict(extra or {})
            if block:
                out[key] = block
        return out


@dataclass(frozen=True)
class Toleration:
    """A pod toleration (``operator`` ``Exists`` takes no ``value``)."""

    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"

    def __post_init__(self) -> None:
        if not _LABEL_KEY.match(self.key):
            raise ValueError(f"toleration key must be a label key, got {self.key!r}")
        if self.operator not in ("Exists", "Equal"):
            raise ValueError(f"toleration operator must be Exists or Equal, got {self.operator!r}")
        if self.operator == "Exists" and self.value is not None:
            raise ValueError("a toleration with operator Exists takes no value")
        if self.effect not in _EFFECTS:
            raise ValueError(
                f"toleration effect must be one of {_EFFECTS[1:]}, got {self.effect!r}"
            )

    def as_dict(self) -> dict[str, str]:
        """The toleration as the API spells it."""
        out = {"key": self.key, "operator": self.operator}
        if self.value is not None:
            out["value"] = self.value
        if self.effect is not None:
            out["effect"] = self.effect
        return out


@dataclass(frozen=True)
class GpuSettings:
    """GPUs per pod and how to land on a GPU node pool.

    The defaults match NVIDIA's device plugin with GPU feature discovery, which labels GPU
    nodes ``nvidia.com/gpu.present=true``; GPU pools are usually tainted ``nvidia.com/gpu``.
    """

    count: int = 1
    resource_name: str = "nvidia.com/gpu"
    node_selector: Mapping[str, str] = field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"}
    )
    tolerations: tuple[Toleration, ...] = (Toleration(key="nvidia.com/gpu"),)

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"gpu.count must be a positive integer, got {self.count!r}")
        if not _LABEL_KEY.match(self.resource_name) or "/" not in self.resource_name:
            raise ValueError(
                f"gpu.resource_name must be an extended resource like 'nvidia.com/gpu', "
                f"got {self.resource_name!r}"
            )
        _check_labels("gpu.node_selector", self.node_selector)

    def resources(self) -> dict[str, str]:
        """The extended resource for requests and limits."""
        return {self.resource_name: str(self.count)}


def _check_common(namespace: str, service_account: str | None) -> None:
    _check_name("namespace", namespace)
    if service_account is not None:
        _check_subdomain("service_account", service_account)


@dataclass(frozen=True)
class TrainingJobSettings:
    """How training runs as a ``batch/v1`` Job."""

    image: str
    namespace: str = "orchard"
    service_account: str | None = "orchard-training"
    command: tuple[str, ...] = ("python", "-m", "orchard_pipelines.train")
    mlflow_tracking_uri: str = "http://mlflow:5000"
    credentials_secret: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    resources: ContainerResources = field(
        default_factory=lambda: ContainerResources("1", "2Gi", None, "4Gi")
    )
    gpu: GpuSettings | None = None
    backoff_limit: int = 1
    active_deadline_seconds: int = 6 * 3600
    ttl_seconds_after_finished: int = 24 * 3600
    run_as_user: int = 1000
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"

    def __post_init__(self) -> None:
        if not self.image or any(c.isspace() for c in self.image):
            raise ValueError(f"image must be an image reference, got {self.image!r}")
        _check_common(self.namespace, self.service_account)
        if not self.command or not all(self.command):
            raise ValueError("command must be a non-empty sequence of non-empty strings")
        if not _URL.match(self.mlflow_tracking_uri):
            raise ValueError(
                f"mlflow_tracking_uri must be an http(s) URL, got {self.mlflow_tracking_uri!r}"
            )
        if self.credentials_secret is not None:
            _check_subdomain("credentials_secret", self.credentials_secret)
        for name in self.env:
            if not re.match(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", name):
                raise ValueError(f"env has an invalid variable name {name!r}")
        for what, value, low in (
            ("backoff_limit", self.backoff_limit, 0),
            ("active_deadline_seconds", self.active_deadline_seconds, 1),
            ("ttl_seconds_after_finished", self.ttl_seconds_after_finished, 0),
            ("run_as_user", self.run_as_user, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{what} must be an integer >= {low}, got {value!r}")
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise ValueError(f"image_pull_policy is invalid: {self.image_pull_policy!r}")


# KServe's default domain template makes "<name>-predictor-<namespace>" one DNS label, so the
# name's budget shrinks with the namespace (kserve/kserve#4807).
_PREDICTOR_HOST_OVERHEAD: Final = len("-predictor-")
_MIN_NAME_BUDGET: Final = 20


@dataclass(frozen=True)
class InferenceServiceSettings:
    """How a candidate version is served as a KServe ``v1beta1`` InferenceService."""

    namespace: str = "orchard"
    runtime: str | None = "orchard-inference"
    protocol_version: Literal["v1", "v2"] | None = "v2"
    service_account: str | None = "orchard-models"
    deployment_mode: DeploymentMode = "RawDeployment"
    min_replicas: int = 1
    max_replicas: int = 1
    resources: ContainerResources = field(default_factory=ContainerResources)
    gpu: GpuSettings | None = None
    evaluation_url: str | None = None
    mlflow_tracking_uri: str | None = None
    # Non-empty: only these models get ``gpu`` (the others stay on CPU nodes).
    gpu_models: tuple[str, ...] = ()

    def gpu_for(self, model: str) -> GpuSettings | None:
        """The GPU settings of ``model``'s InferenceServices (None: CPU)."""
        if self.gpu is None or (self.gpu_models and model not in self.gpu_models):
            return None
        return self.gpu

    def __post_init__(self) -> None:
        _check_common(self.namespace, self.service_account)
        if self.name_budget < _MIN_NAME_BUDGET:
            raise ValueError(
                f"namespace {self.namespace!r} is too long: KServe's host name "
                f"'<name>-predictor-<namespace>' would leave under {_MIN_NAME_BUDGET} "
                "characters for the InferenceService name"
            )
        if self.runtime is not None:
            _check_subdomain("runtime", self.runtime)
        if self.protocol_version not in (None, "v1", "v2"):
            raise ValueError(f"protocol_version must be v1 or v2, got {self.protocol_version!r}")
        if self.deployment_mode not in ("RawDeployment", "Serverless"):
            raise ValueError(
                f"deployment_mode must be RawDeployment or Serverless, got {self.deployment_mode!r}"
            )
        for what, value in (
            ("min_replicas", self.min_replicas),
            ("max_replicas", self.max_replicas),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{what} must be an integer >= 0, got {value!r}")
        if self.min_replicas == 0 and self.deployment_mode == "RawDeployment":
            raise ValueError("min_replicas 0 (scale to zero) needs deployment_mode Serverless")
        if self.max_replicas < max(self.min_replicas, 1):
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= 1 and >= min_replicas "
                f"({self.min_replicas})"
            )
        if self.evaluation_url is not None and not _URL.match(self.evaluation_url):
            raise ValueError(f"evaluation_url must be an http(s) URL, got {self.evaluation_url!r}")
        if self.mlflow_tracking_uri is not None and not _URL.match(self.mlflow_tracking_uri):
            raise ValueError(
                f"mlflow_tracking_uri must be an http(s) URL, got {self.mlflow_tracking_uri!r}"
            )

    @property
    def name_budget(self) -> int:
        """The longest InferenceService name this namespace allows."""
        return min(63, 63 - _PREDICTOR_HOST_OVERHEAD - len(self.namespace))
