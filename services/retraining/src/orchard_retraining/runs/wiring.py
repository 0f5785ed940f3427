"""Building the pipeline runner the settings ask for."""

from __future__ import annotations

from typing import Final

from opentelemetry import trace

from orchard_retraining.k8s.backends import KubernetesPipelineBackend
from orchard_retraining.k8s.client import current_namespace, load_api_client
from orchard_retraining.k8s.protocols import PipelineBackend
from orchard_retraining.k8s.settings import TrainingJobSettings
from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.runs.local import LocalPipelineBackend
from orchard_retraining.runs.protocols import RolloutStarter, RunRegistry, TriggerLedger
from orchard_retraining.runs.runner import PipelineRunner
from orchard_retraining.runs.store import PipelineRunStore
from orchard_retraining.settings import RetrainingSettings

__all__ = ["build_pipeline_backend", "build_pipeline_runner"]

_IN_CLUSTER_COMMAND: Final = ("python", "-m", "orchard_pipelines.retrain")


def build_pipeline_backend(settings: RetrainingSettings) -> PipelineBackend:
    """A local subprocess backend, or Kubernetes Jobs from in-cluster config.

    Raises:
        ValueError: the Kubernetes backend is chosen without a training image or MLflow URL.
        KubernetesBackendError: no Kubernetes configuration was found.
    """
    if settings.pipeline_backend == "local":
        return LocalPipelineBackend(
            settings.pipeline_command,
            settings.runs_dir,
            tracking_uri=settings.mlflow_tracking_uri,
        )
    if not settings.training_image or not settings.mlflow_tracking_uri:
        raise ValueError(
            "ORCHARD_RETRAINING_PIPELINE_BACKEND=kubernetes needs "
            "ORCHARD_RETRAINING_TRAINING_IMAGE and ORCHARD_RETRAINING_MLFLOW_TRACKING_URI"
        )
    # The default command names this service's interpreter; the training image has its own.
    command = (
        tuple(settings.pipeline_command)
        if "pipeline_command" in settings.model_fields_set
        else _IN_CLUSTER_COMMAND
    )
    namespace = current_namespace()
    job = TrainingJobSettings(
        image=settings.training_image,
        namespace=namespace,
        command=command,
        mlflow_tracking_uri=settings.mlflow_tracking_uri,
        service_account=settings.training_service_account,
        run_as_user=settings.run_as_user,
        active_deadline_seconds=max(1, int(settings.pipeline_timeout_s)),
    )
    return KubernetesPipelineBackend.from_api_client(job, load_api_client())


def build_pipeline_runner(
    settings: RetrainingSettings,
    store: PipelineRunStore,
    registry: RunRegistry,
    metrics: RetrainingMetrics,
    *,
    ledger: TriggerLedger | None = None,
    starter: RolloutStarter | None = None,
    backend: PipelineBackend | None = None,
    tracer: trace.Tracer | None = None,
) -> PipelineRunner:
    """The runner over the configured backend (or ``backend``, for tests); ``tracer``
    traces its stages."""
    return PipelineRunner(
        store,
        backend if backend is not None else build_pipeline_backend(settings),
        registry,
        settings,
        metrics,
        ledger=ledger,
        starter=starter,
        tracer=tracer,
    )
