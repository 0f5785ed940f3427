"""Orchard's evaluation service: it watches every model in production and judges every change."""
