"""Building the Kubernetes ``ApiClient`` the backends share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from kubernetes import config
from kubernetes.client import ApiClient, Configuration
from kubernetes.config.config_exception import ConfigException

from orchard_retraining.k8s.errors import KubernetesBackendError

__all__ = ["current_namespace", "load_api_client"]

SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def current_namespace(default: str = "orchard", *, source: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The namespace this pod runs in (its service account's), else ``default``.

    Jobs and InferenceServices go there: the release's Role grants rights in it, nowhere else.
    """
    try:
        found = source.read_text(encoding="utf-8").strip()
    except OSError:
        return default
    return found or default


def load_api_client(*, kubeconfig: str | None = None, context: str | None = None) -> ApiClient:
    """An ``ApiClient`` for the in-cluster service account, else for a kubeconfig.

    Args:
        kubeconfig: a kubeconfig file; given (or with ``context``), in-cluster config is
            skipped. Default: ``$KUBECONFIG`` (read now, not at import), then
            ``~/.kube/config``.
        context: the kubeconfig context (default: the current one).

    Raises:
        KubernetesBackendError: neither in-cluster config nor a usable kubeconfig was found.
    """
    configuration = Configuration()
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException:
            pass
        else:
            return ApiClient(configuration)
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig or os.environ.get("KUBECONFIG") or None,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except ConfigException as e:
        raise KubernetesBackendError(
            f"no Kubernetes configuration: not in a cluster, and no usable kubeconfig ({e})"
        ) from e
    return ApiClient(configuration)
