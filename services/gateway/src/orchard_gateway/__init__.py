"""Orchard package."""
