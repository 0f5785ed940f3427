"""Errors raised by Orchard's training pipelines.

PipelineError
└── TrackingServerUnavailable   the MLflow tracking server cannot be reached (CLI exit 2)
"""

from __future__ import annotations

__all__ = ["PipelineError", "TrackingServerUnavailable"]


class PipelineError(Exception):
    """A training pipeline failed in a way its caller can report in one line."""


class TrackingServerUnavailable(PipelineError):
    """The MLflow tracking server did not answer; nothing was trained or logged."""
