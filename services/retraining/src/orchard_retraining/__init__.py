"""Orchard's retraining service: the model lifecycle controller (triggers, pipeline runs,
quality gates, rollouts, MLflow aliases and the route table)."""
