"""``orchard-retraining`` / ``python -m orchard_retraining``: run the retraining service."""

from __future__ import annotations

from orchard_core import load_settings, serve
from orchard_retraining.app import create_app
from orchard_retraining.settings import RetrainingSettings

__all__ = ["main"]


def main() -> None:
    """Validate settings, then serve until SIGINT/SIGTERM."""
    settings = load_settings(RetrainingSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
