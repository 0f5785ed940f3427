"""The app factory: start-up refuses a bad route table; nothing is served half-started."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from orchard_gateway import GatewaySettings, RouteTableError, create_app

from .factories import infer_body


async def test_start_up_stops_on_a_missing_route_table(tmp_path: Path) -> None:
    missing = tmp_path / "routes.yaml"
    app = create_app(GatewaySettings(routes_file=missing))
    with pytest.raises(RouteTableError, match=f"route table {missing}: file not found"):
        async with app.router.lifespan_context(app):
            pass


async def test_before_start_up_the_gateway_says_it_is_not_ready(tmp_path: Path) -> None:
    app = create_app(GatewaySettings(routes_file=tmp_path / "routes.yaml"))
    transport = httpx2.ASGITransport(app=app)  # no lifespan: nothing loaded yet
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as client:
        readyz = await client.get("/readyz")
        assert readyz.status_code == 503
        assert "route table" in readyz.json()["error"]
        assert (await client.get("/v2/health/ready")).status_code == 503
        assert (await client.get("/v2/health/live")).status_code == 200
        infer = await client.post("/v2/models/m/infer", content=infer_body())
        assert infer.status_code == 503
        assert "starting" in infer.json()["error"]
