"""Orchard's training pipelines, demo datasets and reference profiles.

- :mod:`orchard_pipelines.datasets` — seeded synthetic data with known ground truth
  (``credit_risk``).
- :mod:`orchard_pipelines.profiles` — JSON reference profiles of training data for drift checks.
- :mod:`orchard_pipelines.train` — train, log, register and alias the demo models
  (``python -m orchard_pipelines.train``).

Only the light, dependency-free names are re-exported here: importing the package must not
pull in MLflow and torch for a caller that only wants data or profiles.
"""

from orchard_pipelines.errors import PipelineError, TrackingServerUnavailable
from orchard_pipelines.profiles import ReferenceProfile, build_profile, merge_profiles

__all__ = [
    "PipelineError",
    "ReferenceProfile",
    "TrackingServerUnavailable",
    "build_profile",
    "merge_profiles",
]
