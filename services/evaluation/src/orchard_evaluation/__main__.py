"""``orchard-evaluation`` / ``python -m orchard_evaluation``: run the evaluation service."""

from __future__ import annotations

from orchard_core import load_settings, serve
from orchard_evaluation.app import create_app
from orchard_evaluation.settings import EvaluationSettings

__all__ = ["main"]


def main() -> None:
    """Validate settings, then serve until SIGINT/SIGTERM."""
    settings = load_settings(EvaluationSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
