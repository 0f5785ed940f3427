"""The gateway's settings, read from ``ORCHARD_GATEWAY_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from orchard_core import ServiceSettings

__all__ = ["GatewaySettings"]

MIB = 1024 * 1024


class GatewaySettings(ServiceSettings):
    """Everything the gateway can be told at start-up."""

    model_config = SettingsConfigDict(env_prefix="ORCHARD_GATEWAY_", extra="ignore", frozen=True)

    service_name: str = Field(default="gateway", description="Name in logs, metrics and traces.")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port to listen on.")
    access_log: bool = Field(
        # On for the gateway: the public API's access lines (request id, key id, model,
        # version, status, latency) are what operators search first.
        default=True,
        description="One log line per request (never with credentials).",
    )
    routes_file: Path = Field(
        default=Path(".orchard/routes.yaml"),
        description="Route table file (YAML or JSON): each model's versions, weights and mirrors.",
    )
    routes_url: str | None = Field(
        default=None,
        description=(
            "Poll the route table from this URL (retraining's GET /v1/routes, with ETag)"
            " instead of reading routes_file."
        ),
    )
    routes_poll_s: float = Field(
        default=1.0, gt=0, description="How often the route table source is checked for changes."
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
    api_keys_file: Path | None = Field(
        default=None,
        description=(
            "API keys (YAML or JSON, see orchard_gateway.auth); when unset, keys are read from"
            " ORCHARD_GATEWAY_API_KEYS (JSON)."
        ),
    )
    auth_enabled: bool = Field(
        # Off by default for now so local dev (`orchard up`) keeps working; the gateway logs
        # a loud warning at start-up while it is off.
        default=False,
        description="Require an API key (with the route's role) and rate-limit per key.",
    )
    api_key_pepper: SecretStr = Field(
        default=SecretStr(""),
        description="Server-side secret keying the HMAC of stored API keys.",
    )
    upstream_per_try_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest wait for one try at a backend (upstream_timeout_s bounds all tries).",
    )
    retry_max_attempts: int = Field(
        default=3, ge=1, description="Most tries per request (connect failures and 503 only)."
    )
    retry_budget_ratio: float = Field(
        default=0.2, ge=0, description="Retries allowed as a fraction of requests (rolling)."
    )
    retry_budget_min_per_s: float = Field(
        default=10.0,
        ge=0,
        description=(
            "Retries per second always allowed on top of the ratio (a reserve for low traffic;"
            " 0: the ratio alone)."
        ),
    )
    breaker_failure_threshold: int = Field(
        default=5, ge=1, description="Consecutive failures that open a backend's circuit."
    )
    breaker_open_s: float = Field(
        default=5.0, gt=0, description="How long an opened circuit refuses calls (then probes)."
    )

    # --- payload logging and feedback (to evaluation) ---
    evaluation_url: str | None = Field(
        default=None,
        description=(
            "Evaluation service base URL: prediction events go to its POST /v1/events and"
            " feedback to its POST /v1/feedback. Unset: payload logging is off."
        ),
    )
    events_sample_rate: float = Field(
        default=1.0, ge=0, le=1, description="Share of predictions logged as events (0..1)."
    )
    events_queue_size: int = Field(
        default=10_000, ge=1, description="Most events held in memory (then dropped, counted)."
    )
    events_batch_size: int = Field(default=500, ge=1, description="Events per POST to evaluation.")
    events_flush_interval_s: float = Field(
        default=1.0, gt=0, description="Longest wait before queued events are sent."
    )
    # --- mirrors (shadow traffic) ---
    mirror_max_in_flight: int = Field(
        default=64,
        ge=1,
        description="Most mirrored requests in flight (more are skipped, counted).",
    )
    # --- batch endpoints and async batch jobs ---
    batch_chunk_size: int = Field(
        default=256, ge=1, description="Rows per backend call in batch requests and jobs."
    )
    batch_max_rows: int = Field(
        default=10_000, ge=1, description="Most rows in one synchronous batch request (then 413)."
    )
    jobs_dir: Path = Field(
        default=Path(".orchard/jobs"),
        description="Where async batch jobs keep inputs, state and results.",
    )
    jobs_max_concurrent: int = Field(
        default=2, ge=1, description="Async batch jobs running at once (the rest wait queued)."
    )
    jobs_max_bytes: int = Field(
        default=512 * MIB, ge=1, description="Largest async batch job upload (then 413)."
    )
    # --- browsers ---
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (CORS); empty: none.",
    )
