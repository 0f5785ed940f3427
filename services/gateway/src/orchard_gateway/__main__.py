"""``orchard-gateway`` / ``python -m orchard_gateway``: run the gateway."""

from __future__ import annotations

from orchard_core import load_settings, serve
from orchard_gateway.app import create_app
from orchard_gateway.route_sources import load_route_table
from orchard_gateway.routes_table import RouteTableError
from orchard_gateway.settings import GatewaySettings

__all__ = ["main"]


def main() -> None:
    """Validate settings and the route table, then serve until SIGINT/SIGTERM."""
    settings = load_settings(GatewaySettings)
    try:
        # Checked before serving so a bad file stops the process with one clear line
        # rather than a start-up traceback; the lifespan then loads it for real.
        if settings.routes_url is None:
            load_route_table(settings.routes_file)
    except RouteTableError as exc:
        raise SystemExit(f"orchard-gateway: cannot start: {exc}") from None
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
