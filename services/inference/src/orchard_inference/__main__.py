"""``python -m orchard_inference`` / ``orchard-inference``: serve the configured models."""

from __future__ import annotations

from orchard_core import load_settings, serve
from orchard_inference.app import create_app
from orchard_inference.settings import InferenceSettings


def main() -> None:
    """Load settings from the environment, build the app and serve it until SIGTERM."""
    settings = load_settings(InferenceSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
