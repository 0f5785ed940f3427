"""Orchard's gateway: the public API that routes OIP v2 and KServe v1 requests to backends.

Run it with ``orchard-gateway`` (or ``python -m orchard_gateway``); build it in tests with
``create_app(settings)``.
"""

from orchard_gateway.app import create_app
from orchard_gateway.routes_table import Route, RouteTable, RouteTableError
from orchard_gateway.settings import GatewaySettings

__all__ = ["GatewaySettings", "Route", "RouteTable", "RouteTableError", "create_app"]
