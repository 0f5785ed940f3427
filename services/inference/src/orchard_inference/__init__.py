"""Orchard's inference runtime: Open Inference Protocol v2 and KServe v1 over MLflow models."""

from orchard_inference.app import create_app
from orchard_inference.dataplane import DataPlane, InlineRunner, ModelRunner
from orchard_inference.flavors import ModelLoader, Predictor
from orchard_inference.model import ModelState, ServedModel
from orchard_inference.repository import ModelRepository
from orchard_inference.settings import InferenceSettings
from orchard_inference.sources import MlflowModelSource, ModelLocation, ModelSource

__all__ = [
    "DataPlane",
    "InferenceSettings",
    "InlineRunner",
    "MlflowModelSource",
    "ModelLoader",
    "ModelLocation",
    "ModelRepository",
    "ModelRunner",
    "ModelSource",
    "ModelState",
    "Predictor",
    "ServedModel",
    "create_app",
]
