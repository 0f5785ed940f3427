"""Building the controller and its collaborators from the service's settings."""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp

from orchard_retraining.controller.core import RolloutController
from orchard_retraining.evaluation_client import EvaluationClient
from orchard_retraining.k8s.protocols import TrafficBackend
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.registry import ModelRegistry
from orchard_retraining.rollout_store import RolloutStore
from orchard_retraining.settings import RetrainingSettings
from orchard_retraining.traffic_local import LocalTrafficBackend

__all__ = ["build_controller", "build_traffic_backend"]


def build_traffic_backend(settings: RetrainingSettings) -> TrafficBackend | None:
    """The traffic backend the settings name (``None``: local without a runtime URL)."""
    if settings.traffic_backend == "kubernetes":
        from orchard_retraining.k8s import (
            InferenceServiceSettings,
            KubernetesTrafficBackend,
            current_namespace,
            load_api_client,
        )

        isvc = InferenceServiceSettings(
            namespace=current_namespace(),
            runtime=settings.kserve_runtime,
            service_account=settings.kserve_service_account,
            deployment_mode=settings.kserve_deployment_mode,
            evaluation_url=settings.evaluation_url if settings.kserve_payload_logger else None,
            mlflow_tracking_uri=settings.mlflow_tracking_uri,
        )
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
