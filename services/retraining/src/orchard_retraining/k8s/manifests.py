"""Pure builders of the Kubernetes objects the retraining controller creates, as plain dicts.

- :func:`training_job`: a ``batch/v1`` Job running one training run under the restricted Pod
  Security Standard (non-root, no privilege escalation, no capabilities, RuntimeDefault
  seccomp, read-only root file system with an ``emptyDir`` at ``/tmp``).
- :func:`inference_service`: a KServe ``serving.kserve.io/v1beta1`` InferenceService serving
  one candidate model version.

Nothing here talks to a cluster; the backends send these dicts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from orchard_retraining.k8s.names import dns_label, label_value
from orchard_retraining.k8s.settings import (
    GpuSettings,
    InferenceServiceSettings,
    TrainingJobSettings,
)

__all__ = [
    "DEPLOYMENT_MODE_ANNOTATION",
    "TRAIN_CONTAINER",
    "inference_service",
    "inference_service_name",
    "job_name",
    "training_job",
]

PART_OF: Final = "orchard"
MANAGED_BY: Final = "orchard-retraining"
TRAIN_CONTAINER: Final = "train"
DEPLOYMENT_MODE_ANNOTATION: Final = "serving.kserve.io/deploymentMode"
MODEL_LABEL: Final = "orchard.dev/model"
VERSION_LABEL: Final = "orchard.dev/version"
RUN_ID_LABEL: Final = "orchard.dev/run-id"
TRIGGER_ID_LABEL: Final = "orchard.dev/trigger-id"
# Label values are capped and sanitised; the annotation keeps the registry name verbatim.
MODEL_NAME_ANNOTATION: Final = "orchard.dev/model-name"
_TMP_VOLUME: Final = "tmp"
# A path inside the pod (an emptyDir), not this process's temporary directory.
_POD_TMP: Final = "/tmp"  # noqa: S108


def job_name(model: str, run_id: str) -> str:
    """The Job's name for one run: ``train-<model>-<run_id>``, DNS-safe, at most 63 chars."""
    return dns_label("train", model, run_id)


def inference_service_name(settings: InferenceServiceSettings, model: str, version: str) -> str:
    """The InferenceService's name for one version: ``<model>-v<version>``, DNS-safe.

    It starts with a letter (KServe names Services after it) and fits the namespace's budget
    (see :attr:`InferenceServiceSettings.name_budget`).
    """
    return dns_label(model, f"v{version}", max_len=settings.name_budget, letter_first=True)


def _common_labels(component: str, instance: str, model: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"orchard-{component}",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        MODEL_LABEL: label_value(model),
    }


def _scheduling(gpu: GpuSettings | None) -> dict[str, Any]:
    if gpu is None:
        return {}
    out: dict[str, Any] = {}
    if gpu.node_selector:
        out["nodeSelector"] = dict(gpu.node_selector)
    if gpu.tolerations:
        out["tolerations"] = [t.as_dict() for t in gpu.tolerations]
    return out


def _restricted_container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def training_job(
    settings: TrainingJobSettings,
    *,
    model: str,
    run_id: str,
    trigger_id: str,
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ``batch/v1`` Job that runs ``settings.command + args`` once for ``model``.

    Args:
        settings: image, namespace, resources, GPU options, limits.
        model: the registered model name (sanitised into labels; verbatim in an annotation).
        run_id: the controller's pipeline-run id; part of the Job name, so a resubmitted run
            maps to the same Job.
        trigger_id: what caused the run (drift event, schedule, manual).
        args: arguments appended to ``settings.command``.
        env: this run's own variables (``TRACEPARENT``), after ``settings.env``.

    Returns:
        The Job as the API server accepts it.
    """
    if not model or not run_id:
        raise ValueError("model and run_id must be non-empty")
    name = job_name(model, run_id)
    labels = _common_labels("training", name, model) | {
        RUN_ID_LABEL: label_value(run_id),
        TRIGGER_ID_LABEL: label_value(trigger_id),
    }
    # HOME on the emptyDir: with a read-only root, libraries that cache under ~ still work.
    variables: list[dict[str, Any]] = [
        {"name": "MLFLOW_TRACKING_URI", "value": settings.mlflow_tracking_uri},
        {"name": "HOME", "value": _POD_TMP},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    variables += [{"name": k, "value": v} for k, v in settings.env.items()]
    variables += [{"name": k, "value": v} for k, v in (env or {}).items()]
    container: dict[str, Any] = {
        "name": TRAIN_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(settings.command),
        "args": list(args),
        "env": variables,
        "resources": settings.resources.as_dict(settings.gpu.resources() if settings.gpu else None),
        "securityContext": _restricted_container_security(),
        "volumeMounts": [{"name": _TMP_VOLUME, "mountPath": _POD_TMP}],
    }
    if settings.credentials_secret is not None:
        container["envFrom"] = [{"secretRef": {"name": settings.credentials_secret}}]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # Training never calls the Kubernetes API; cloud identity (IRSA, Workload Identity)
        # comes through the service account's annotations, not this token.
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_user,
            "fsGroup": settings.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": _TMP_VOLUME, "emptyDir": {}}],
        **_scheduling(settings.gpu),
    }
    if settings.service_account is not None:
        pod_spec["serviceAccountName"] = settings.service_account
    annotations = {MODEL_NAME_ANNOTATION: model}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "backoffLimit": settings.backoff_limit,
            "activeDeadlineSeconds": settings.active_deadline_seconds,
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }


def inference_service(
    settings: InferenceServiceSettings,
    *,
    model: str,
    version: str,
    storage_uri: str,
    model_format: str,
) -> dict[str, Any]:
    """A KServe ``v1beta1`` InferenceService serving one model version.

    Args:
        settings: namespace, runtime, replicas, resources, GPU options, payload logging.
        model: the registered model name.
        version: the registry version (e.g. ``"7"``).
        storage_uri: ``models:/<name>/<version>``, which the runtime loads from MLflow
            itself (needs ``settings.mlflow_tracking_uri``), or a URL KServe's storage
            initializer fetches (``s3://``, ``gs://``, ``pvc://``, ``https://``, ...).
        model_format: the ``modelFormat.name`` (``mlflow``, ``sklearn``, ``pytorch``, ...).

    Returns:
        The InferenceService as the API server accepts it.
    """
    if not model or not version:
        raise ValueError("model and version must be non-empty")
    from_registry = storage_uri.startswith("models:/") and len(storage_uri) > len("models:/")
    if from_registry and settings.mlflow_tracking_uri is None:
        raise ValueError(
            f"storage_uri {storage_uri!r} is loaded from MLflow by the runtime itself, which "
            "needs settings.mlflow_tracking_uri"
        )
    if not from_registry and ("://" not in storage_uri or storage_uri.startswith("runs:/")):
        raise ValueError(
            f"storage_uri must be models:/<name>/<version> or a URL KServe's storage "
            f"initializer can fetch (s3://, gs://, pvc://, https://, ...), got {storage_uri!r}; "
            "resolve runs:/ URIs to their artifact location first"
        )
    if not model_format or model_format != model_format.strip().lower():
        raise ValueError(f"model_format must be a lowercase format name, got {model_format!r}")
    name = inference_service_name(settings, model, version)
    labels = _common_labels("inference", name, model) | {VERSION_LABEL: label_value(version)}
    gpu = settings.gpu_for(model)
    model_spec: dict[str, Any] = {
        "modelFormat": {"name": model_format},
        "resources": settings.resources.as_dict(gpu.resources() if gpu else None),
    }
    env: list[dict[str, str]] = []
    if from_registry:
        # No storage initializer: the runtime loads the version from MLflow (through the
        # tracking server's artifact proxy, so any artifact store works) and serves it under
        # its registered name and version, the path the gateway's route table calls.
        env += [
            {"name": "MLFLOW_TRACKING_URI", "value": str(settings.mlflow_tracking_uri)},
            {"name": "ORCHARD_INFERENCE_MODELS", "value": json.dumps({model: storage_uri})},
            # This pod serves its one version: no other name loads on demand.
            {"name": "ORCHARD_INFERENCE_LAZY_LOAD_REGISTRY", "value": "false"},
        ]
    else:
        model_spec["storageUri"] = storage_uri
    if settings.runtime is not None:
        model_spec["runtime"] = settings.runtime
    if settings.protocol_version is not None:
        model_spec["protocolVersion"] = settings.protocol_version
    if gpu is not None:
        # The Orchard runtime fails to load rather than quietly falling back to the CPU.
        env.append({"name": "ORCHARD_INFERENCE_DEVICE", "value": "cuda"})
    if env:
        model_spec["env"] = env
    predictor: dict[str, Any] = {
        "minReplicas": settings.min_replicas,
        "maxReplicas": settings.max_replicas,
        "model": model_spec,
        **_scheduling(gpu),
    }
    if settings.service_account is not None:
        predictor["serviceAccountName"] = settings.service_account
    if settings.evaluation_url is not None:
        predictor["logger"] = {
            "mode": "all",
            "url": f"{settings.evaluation_url.rstrip('/')}/v1/events",
        }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": {
                DEPLOYMENT_MODE_ANNOTATION: settings.deployment_mode,
                MODEL_NAME_ANNOTATION: model,
            },
        },
        "spec": {"predictor": predictor},
    }
