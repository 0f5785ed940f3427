"""The rollout controller: drives the rollout state machine, keeps MLflow's aliases and the
traffic backend in step with it, and serves the route table."""

from orchard_retraining.controller.build import build_controller, build_traffic_backend
from orchard_retraining.controller.core import RolloutController

__all__ = ["RolloutController", "build_controller", "build_traffic_backend"]
