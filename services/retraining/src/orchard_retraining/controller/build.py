"""Building the controller and its collaborators from the service's settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import aiohttp

from orchard_retraining.controller.core import RolloutController
from orchard_retraining.evaluation_client import EvaluationClient
from orchard_retraining.k8s.protocols import TrafficBackend
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.registry import ModelRegistry
from orchard_retraining.rollout_store import RolloutStore
from orchard_retraining.settings import RetrainingSettings
from orchard_retraining.traffic_local import LocalTrafficBackend

if TYPE_CHECKING:  # the Kubernetes client is imported only when it is used
    from orchard_retraining.k8s import InferenceServiceSettings

__all__ = ["build_controller", "build_traffic_backend", "inference_service_settings"]


def inference_service_settings(
    settings: RetrainingSettings, namespace: str
) -> InferenceServiceSettings:
    """How this service's InferenceServices look, from its settings, in ``namespace``.

    Raises:
        ValueError: a setting Kubernetes would refuse (names, the namespace's length).
    """
    from orchard_retraining.k8s import GpuSettings, InferenceServiceSettings

    return InferenceServiceSettings(
        namespace=namespace,
        runtime=settings.kserve_runtime,
        service_account=settings.kserve_service_account,
        deployment_mode=settings.kserve_deployment_mode,
        evaluation_url=settings.evaluation_url if settings.kserve_payload_logger else None,
        mlflow_tracking_uri=settings.mlflow_tracking_uri,
        gpu=GpuSettings() if settings.kserve_gpu_models else None,
        gpu_models=tuple(settings.kserve_gpu_models),
    )


def build_traffic_backend(settings: RetrainingSettings) -> TrafficBackend | None:
    """The traffic backend the settings name (``None``: local without a runtime URL)."""
    if settings.traffic_backend == "kubernetes":
        from orchard_retraining.k8s import (
            KubernetesTrafficBackend,
            current_namespace,
            load_api_client,
        )

        isvc = inference_service_settings(settings, current_namespace())
        return KubernetesTrafficBackend.from_api_client(isvc, load_api_client())
    if settings.runtime_url is None:
        return None
    return LocalTrafficBackend(settings.runtime_url)


def build_controller(
    settings: RetrainingSettings,
    store: RolloutStore,
    metrics: RetrainingMetrics,
    session: aiohttp.ClientSession,
    *,
    registry: ModelRegistry | None,
    traffic: TrafficBackend | None,
    retire_grace_s: float = 5.0,
    clock: Callable[[], float] = time.time,
) -> RolloutController:
    """A controller as the settings describe it, over the app's HTTP session."""
    evaluation = EvaluationClient(
        settings.evaluation_url, session, metrics, timeout_s=settings.evaluation_timeout_s
    )
    local = settings.traffic_backend == "local"
    return RolloutController(
        store,
        evaluation=evaluation,
        metrics=metrics,
        registry=registry,
        traffic=traffic,
        target_url=settings.runtime_url if local else None,
        models=settings.models,
        rollout_defaults=settings.rollout_defaults,
        interval_s=settings.controller_interval_s,
        champion_refresh_s=settings.champion_refresh_s,
        retire_grace_s=retire_grace_s,
        clock=clock,
    )
