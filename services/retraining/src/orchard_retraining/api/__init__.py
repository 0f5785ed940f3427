"""The retraining service's HTTP API."""
