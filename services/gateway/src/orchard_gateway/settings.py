"""The gateway's settings, read from ``ORCHARD_GATEWAY_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from orchard_core import ServiceSettings

__all__ = ["GatewaySettings"]

MIB = 1024 * 1024


class GatewaySettings(ServiceSettings):
    """Everything the gateway can be told at start-up."""

    model_config = SettingsConfigDict(env_prefix="ORCHARD_GATEWAY_", extra="ignore", frozen=True)

    service_name: str = Field(default="gateway", description="Name in logs, metrics and traces.")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port to listen on.")
    routes_file: Path = Field(
        default=Path(".orchard/routes.yaml"),
        description="Route table (YAML or JSON) mapping each model to its backend and version.",
    )
    routes_poll_s: float = Field(
        default=1.0, gt=0, description="How often the route table file is checked for changes."
    )
    upstream_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest wait for a backend's whole answer (then 504)."
    )
    upstream_pool_size: int = Field(
        default=100, ge=1, description="Most connections kept open to backends, all together."
    )
    upstream_keepalive_s: float = Field(
        # Below uvicorn's 5 s default, so the gateway drops an idle connection before the
        # backend does and never sends a request down a socket the backend is closing.
        default=4.0,
        gt=0,
        description="How long an idle backend connection is kept for reuse.",
    )
    max_body_bytes: int = Field(
        default=8 * MIB, ge=1, description="Largest request body accepted (then 413)."
    )
