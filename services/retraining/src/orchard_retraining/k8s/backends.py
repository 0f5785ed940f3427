"""Kubernetes implementations of :class:`PipelineBackend` and :class:`TrafficBackend`.

The API objects (``BatchV1Api``, ``CoreV1Api``, ``CustomObjectsApi``) are injected, so tests
hand in ones whose transport records requests; :func:`orchard_retraining.k8s.client.load_api_client`
builds the real ``ApiClient`` from in-cluster config or a kubeconfig.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from kubernetes.client import ApiClient, BatchV1Api, CoreV1Api, CustomObjectsApi, V1Job, V1Pod
from kubernetes.client.exceptions import ApiException

from orchard_retraining.k8s.errors import DeploymentNotReady, KubernetesBackendError, RunNotFound
from orchard_retraining.k8s.manifests import TRAIN_CONTAINER, inference_service, training_job
from orchard_retraining.k8s.manifests import inference_service_name as _isvc_name
from orchard_retraining.k8s.protocols import RunState, RunStatus
from orchard_retraining.k8s.settings import InferenceServiceSettings, TrainingJobSettings

__all__ = [
    "KSERVE_GROUP",
    "KSERVE_PLURAL",
    "KSERVE_VERSION",
    "KubernetesPipelineBackend",
    "KubernetesTrafficBackend",
    "job_status",
]

KSERVE_GROUP: Final = "serving.kserve.io"
KSERVE_VERSION: Final = "v1beta1"
KSERVE_PLURAL: Final = "inferenceservices"
JOB_NAME_LABEL: Final = "batch.kubernetes.io/job-name"
_SUCCEEDED: Final = ("Complete", "SuccessCriteriaMet")
_FAILED: Final = ("Failed", "FailureTarget")


def _fail(call: str, error: ApiException) -> KubernetesBackendError:
    return KubernetesBackendError(f"{call} failed: {error.status} {error.reason}")


def job_status(job: V1Job) -> RunStatus:
    """Map a Job's status to a :class:`RunStatus`.

    Terminal conditions win (``FailureTarget``/``SuccessCriteriaMet`` are set before
    ``Failed``/``Complete`` since Kubernetes 1.31); otherwise a ready pod means running.
    """
    status = job.status
    if status is None:
        return RunStatus(RunState.PENDING)
    for condition in status.conditions or []:
        if condition.status != "True":
            continue
        detail = ": ".join(p for p in (condition.reason, condition.message) if p) or None
        if condition.type in _FAILED:
            return RunStatus(RunState.FAILED, detail)
        if condition.type in _SUCCEEDED:
            return RunStatus(RunState.SUCCEEDED, detail)
    if job.spec is not None and job.spec.suspend:
        return RunStatus(RunState.PENDING, "Suspended")
    if status.ready:
        return RunStatus(RunState.RUNNING)
    return RunStatus(RunState.PENDING)


def _newest_pod_name(pods: Sequence[V1Pod]) -> str | None:
    """The most recently created pod's name: after a retry, the attempt that counts."""
    named = [
        (str(p.metadata.creation_timestamp or ""), p.metadata.name)
        for p in pods
        if p.metadata is not None and p.metadata.name
    ]
    return max(named)[1] if named else None


class KubernetesPipelineBackend:
    """Runs training as a ``batch/v1`` Job; the handle is the Job's name."""

    def __init__(self, settings: TrainingJobSettings, batch: BatchV1Api, core: CoreV1Api) -> None:
        self._settings = settings
        self._batch = batch
        self._core = core

    @classmethod
    def from_api_client(
        cls, settings: TrainingJobSettings, api_client: ApiClient
    ) -> KubernetesPipelineBackend:
        """Build one over a shared ``ApiClient`` (see ``load_api_client``)."""
        return cls(settings, BatchV1Api(api_client), CoreV1Api(api_client))

    def submit(
        self,
        *,
        model: str,
        run_id: str,
        trigger_id: str,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
    ) -> str:
        manifest = training_job(
            self._settings, model=model, run_id=run_id, trigger_id=trigger_id, args=args, env=env
        )
        name: str = manifest["metadata"]["name"]
        try:
            self._batch.create_namespaced_job(
                namespace=self._settings.namespace, body=V1Job.model_validate(manifest)
            )
        except ApiException as e:
            # The name derives from the run id: a 409 is this run, submitted before.
            if e.status != 409:
                raise _fail(f"create Job {name}", e) from e
        return name

    def status(self, handle: str) -> RunStatus:
        try:
            job = self._batch.read_namespaced_job_status(
                name=handle, namespace=self._settings.namespace
            )
        except ApiException as e:
            if e.status == 404:
                raise RunNotFound(f"no Job {handle!r} in {self._settings.namespace!r}") from e
            raise _fail(f"read Job {handle}", e) from e
        return job_status(job)

    def logs(self, handle: str, *, tail_lines: int | None = None) -> str:
        namespace = self._settings.namespace
        try:
            pods = self._core.list_namespaced_pod(
                namespace=namespace, label_selector=f"{JOB_NAME_LABEL}={handle}"
            )
            pod = _newest_pod_name(pods.items)
            if pod is None:
                return ""
            return self._core.read_namespaced_pod_log(
                name=pod,
                namespace=namespace,
                container=TRAIN_CONTAINER,
                tail_lines=tail_lines,
            )
        except ApiException as e:
            # 400: the container is still waiting to start; there is nothing to read yet.
            if e.status == 400:
                return ""
            raise _fail(f"read logs of Job {handle}", e) from e

    def cancel(self, handle: str) -> None:
        try:
            self._batch.delete_namespaced_job(
                name=handle, namespace=self._settings.namespace, propagation_policy="Background"
            )
        except ApiException as e:
            if e.status != 404:
                raise _fail(f"delete Job {handle}", e) from e


class KubernetesTrafficBackend:
    """Serves each candidate version as its own KServe InferenceService."""

    def __init__(
        self,
        settings: InferenceServiceSettings,
        custom: CustomObjectsApi,
        *,
        ready_timeout_s: float = 600.0,
        poll_interval_s: float = 5.0,
        prefer_internal_url: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._custom = custom
        self._ready_timeout_s = ready_timeout_s
        self._poll_interval_s = poll_interval_s
        self._prefer_internal_url = prefer_internal_url
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def from_api_client(
        cls, settings: InferenceServiceSettings, api_client: ApiClient, **options: Any
    ) -> KubernetesTrafficBackend:
        """Build one over a shared ``ApiClient`` (see ``load_api_client``)."""
        return cls(settings, CustomObjectsApi(api_client), **options)

    def _coords(self) -> tuple[str, str, str, str]:
        return KSERVE_GROUP, KSERVE_VERSION, self._settings.namespace, KSERVE_PLURAL

    def _get(self, name: str) -> dict[str, Any] | None:
        try:
            found = self._custom.get_namespaced_custom_object(*self._coords(), name=name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise _fail(f"read InferenceService {name}", e) from e
        return found if isinstance(found, dict) else None

    def deploy(self, model: str, version: str, storage_uri: str, model_format: str) -> str:
        body = inference_service(
            self._settings,
            model=model,
            version=version,
            storage_uri=storage_uri,
            model_format=model_format,
        )
        name: str = body["metadata"]["name"]
        try:
            self._custom.create_namespaced_custom_object(*self._coords(), body=body)
        except ApiException as e:
            if e.status != 409:
                raise _fail(f"create InferenceService {name}", e) from e
            self._replace(name, body)
        return self._wait_ready(name)

    def _replace(self, name: str, body: dict[str, Any]) -> None:
        current = self._get(name)
        try:
            if current is None:  # deleted between our create and get: create again
                self._custom.create_namespaced_custom_object(*self._coords(), body=body)
                return
            # A PUT must carry the current resourceVersion (optimistic concurrency).
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self._custom.replace_namespaced_custom_object(*self._coords(), name=name, body=body)
        except ApiException as e:
            raise _fail(f"replace InferenceService {name}", e) from e

    def _wait_ready(self, name: str) -> str:
        deadline = self._clock() + self._ready_timeout_s
        while True:
            isvc = self._get(name)
            if isvc is None:
                raise DeploymentNotReady(f"InferenceService {name} disappeared while deploying")
            failure = _failure(isvc)
            if failure is not None:
                raise DeploymentNotReady(f"InferenceService {name} failed: {failure}")
            url = self._ready_url(isvc)
            if url is not None:
                return url
            if self._clock() >= deadline:
                raise DeploymentNotReady(
                    f"InferenceService {name} not ready after {self._ready_timeout_s:g}s"
                )
            self._sleep(self._poll_interval_s)

    def _ready_url(self, isvc: dict[str, Any]) -> str | None:
        status: dict[str, Any] = isvc.get("status") or {}
        # Ready on an older generation is the previous spec still serving; wait for ours.
        if status.get("observedGeneration") != isvc.get("metadata", {}).get("generation"):
            return None
        conditions = status.get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            return None
        internal = (status.get("address") or {}).get("url")
        external = status.get("url")
        first, second = (internal, external) if self._prefer_internal_url else (external, internal)
        url = first or second
        return url if isinstance(url, str) and url else None

    def retire(self, model: str, version: str) -> None:
        name = _isvc_name(self._settings, model, version)
        try:
            self._custom.delete_namespaced_custom_object(
                *self._coords(), name=name, propagation_policy="Background"
            )
        except ApiException as e:
            if e.status != 404:
                raise _fail(f"delete InferenceService {name}", e) from e

    def url(self, model: str, version: str) -> str | None:
        isvc = self._get(_isvc_name(self._settings, model, version))
        return None if isvc is None else self._ready_url(isvc)


def _failure(isvc: dict[str, Any]) -> str | None:
    model_status: dict[str, Any] = (isvc.get("status") or {}).get("modelStatus") or {}
    states: dict[str, Any] = model_status.get("states") or {}
    if states.get("targetModelState") != "FailedToLoad":
        return None
    info: dict[str, Any] = model_status.get("lastFailureInfo") or {}
    return ": ".join(str(info[k]) for k in ("reason", "message") if info.get(k)) or "FailedToLoad"
