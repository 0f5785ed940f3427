"""Kubernetes backends of the retraining controller.

- :class:`KubernetesPipelineBackend` runs the ``orchard_pipelines`` training step as a
  ``batch/v1`` Job (built by :func:`training_job`: restricted pod security, optional GPU node
  pool) and reads its status and logs.
- :class:`KubernetesTrafficBackend` serves each candidate version as one KServe
  ``serving.kserve.io/v1beta1`` InferenceService (built by :func:`inference_service`), creating,
  replacing and deleting it through ``CustomObjectsApi``.

Both implement the :class:`PipelineBackend` / :class:`TrafficBackend` protocols, so the local
backends and these are interchangeable.

How this was tested: there is no Kubernetes cluster (and no KServe controller) in the
development or CI environment, so nothing here has run against a real API server. Instead,
``services/retraining/tests/k8s`` checks that

- the Job manifest validates against the ``kubernetes`` client's typed ``V1Job`` model
  (unknown fields rejected, lossless round trip) and, offline, against the Kubernetes
  OpenAPI schema with ``kubernetes-validate`` (strict mode, recent versions);
- the InferenceService manifest deserialises into the KServe SDK's typed models
  (``V1beta1InferenceService`` and the nested Kubernetes types), with no field dropped;
- the backends send exactly the expected requests (HTTP method, path, query, body) through
  the real generated ``BatchV1Api``/``CoreV1Api``/``CustomObjectsApi``, against a recorded
  API contract: canned API-server responses (201, 404 and 409 ``Status`` bodies, Job and
  InferenceService statuses) replayed by a fake transport.

What remains untested without a cluster: admission by a real API server and KServe webhook,
the KServe controller reconciling the InferenceService, RBAC, and the Job actually running.
"""

from orchard_retraining.k8s.backends import (
    KSERVE_GROUP,
    KSERVE_PLURAL,
    KSERVE_VERSION,
    KubernetesPipelineBackend,
    KubernetesTrafficBackend,
    job_status,
)
from orchard_retraining.k8s.client import current_namespace, load_api_client
from orchard_retraining.k8s.errors import DeploymentNotReady, KubernetesBackendError, RunNotFound
from orchard_retraining.k8s.manifests import (
    inference_service,
    inference_service_name,
    job_name,
    training_job,
)
from orchard_retraining.k8s.protocols import PipelineBackend, RunState, RunStatus, TrafficBackend
from orchard_retraining.k8s.settings import (
    ContainerResources,
    GpuSettings,
    InferenceServiceSettings,
    Toleration,
    TrainingJobSettings,
)

__all__ = [
    "KSERVE_GROUP",
    "KSERVE_PLURAL",
    "KSERVE_VERSION",
    "ContainerResources",
    "DeploymentNotReady",
    "GpuSettings",
    "InferenceServiceSettings",
    "KubernetesBackendError",
    "KubernetesPipelineBackend",
    "KubernetesTrafficBackend",
    "PipelineBackend",
    "RunNotFound",
    "RunState",
    "RunStatus",
    "Toleration",
    "TrafficBackend",
    "TrainingJobSettings",
    "current_namespace",
    "inference_service",
    "inference_service_name",
    "job_name",
    "job_status",
    "load_api_client",
    "training_job",
]
