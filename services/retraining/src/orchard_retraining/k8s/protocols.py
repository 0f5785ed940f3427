"""The extension points the retraining controller drives: where training runs, where
candidate versions are served.

Both are blocking interfaces (the ``kubernetes`` client is synchronous); the asyncio
controller calls them through ``asyncio.to_thread``. A local implementation (a subprocess,
the embedded runtime) and the Kubernetes one in this package are interchangeable.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["PipelineBackend", "RunState", "RunStatus", "TrafficBackend"]


class RunState(enum.StrEnum):
    """Where a training run is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Whether the run will not change state again."""
        return self in (RunState.SUCCEEDED, RunState.FAILED)


@dataclass(frozen=True)
class RunStatus:
    """A run's state and, when it failed or waits, why (e.g. ``BackoffLimitExceeded``)."""

    state: RunState
    detail: str | None = None


@runtime_checkable
class PipelineBackend(Protocol):
    """Runs the ``orchard_pipelines`` training step for a model."""

    def submit(
        self,
        *,
        model: str,
        run_id: str,
        trigger_id: str,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Start one training run; return its handle.

        ``env`` is added to the run's environment (``TRACEPARENT``: the run's trace).
        Submitting the same ``run_id`` again returns the same handle and starts nothing.
        """
        ...

    def status(self, handle: str) -> RunStatus:
        """The run's current state."""
        ...

    def logs(self, handle: str, *, tail_lines: int | None = None) -> str:
        """The run's output so far (empty when it has not started)."""
        ...

    def cancel(self, handle: str) -> None:
        """Stop the run and clean it up; cancelling an unknown or finished run is fine."""
        ...


@runtime_checkable
class TrafficBackend(Protocol):
    """Serves candidate model versions, one endpoint per version."""

    def deploy(self, model: str, version: str, storage_uri: str, model_format: str) -> str:
        """Serve ``model`` ``version`` (create or update); return its URL once ready."""
        ...

    def retire(self, model: str, version: str) -> None:
        """Stop serving a version; retiring one that is not served is fine."""
        ...

    def url(self, model: str, version: str) -> str | None:
        """The version's URL, or ``None`` when it is not served or not ready yet."""
        ...
