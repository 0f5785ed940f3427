"""Errors of the Kubernetes backends.

```
KubernetesBackendError          the API server refused or failed a request (wraps ApiException)
├── RunNotFound                 no Job for this handle (never submitted, or garbage-collected)
└── DeploymentNotReady          an InferenceService did not become ready (failed or timed out)
```
"""

from __future__ import annotations

__all__ = ["DeploymentNotReady", "KubernetesBackendError", "RunNotFound"]


class KubernetesBackendError(Exception):
    """A Kubernetes API call failed; the message names the call and the API status."""


class RunNotFound(KubernetesBackendError):
    """The training Job does not exist (404 from the API server)."""


class DeploymentNotReady(KubernetesBackendError):
    """The InferenceService failed to load its model or was not ready in time."""
