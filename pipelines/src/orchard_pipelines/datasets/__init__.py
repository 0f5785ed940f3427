"""Seeded demo datasets with known ground truth, for training, simulation and drift tests."""

from orchard_pipelines.datasets import credit_risk

__all__ = ["credit_risk"]
