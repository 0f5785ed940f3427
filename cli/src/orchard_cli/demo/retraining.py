"""The retraining API as the demo uses it: asynchronous, next to the running traffic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from orchard_cli.retraining_client import RetrainingAPIError, RetrainingUnreachable

__all__ = ["HttpPlatform"]


class HttpPlatform:
    """:class:`~orchard_cli.demo.scenarios.Platform` over HTTP (retraining's ``/v1`` API).

    Raises:
        RetrainingUnreachable: no answer, or a 5xx.
        RetrainingAPIError: a 4xx, with the service's ``error`` text.
    """

    def __init__(self, base_url: str, client: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, f"{self.base_url}{path}", **kwargs)
        except httpx.HTTPError as e:
            raise RetrainingUnreachable(f"retraining at {self.base_url}: {e!r}") from e
        if response.status_code >= 400:
            try:
                message = str(response.json().get("error", response.text))
            except (ValueError, AttributeError):
                message = response.text[:300]
            if response.status_code >= 500:
                raise RetrainingUnreachable(
                    f"retraining answered {response.status_code}: {message}"
                )
            raise RetrainingAPIError(response.status_code, message)
        data = response.json()
        return data if isinstance(data, dict) else {"items": data}

    async def rollouts(self, model: str) -> list[dict[str, Any]]:
        """The model's rollouts, newest first."""
        data = await self._call("GET", "/v1/rollouts", params={"model": model, "limit": 20})
        return list(data.get("rollouts", []))

    async def rollout(self, rollout_id: Any) -> dict[str, Any]:
        """One rollout."""
        return await self._call("GET", f"/v1/rollouts/{rollout_id}")

    async def pipeline_runs(self, model: str) -> list[dict[str, Any]]:
        """The model's pipeline runs, newest first."""
        data = await self._call("GET", "/v1/pipeline-runs", params={"model": model, "limit": 20})
        return list(data.get("runs", data.get("pipeline_runs", [])))

    async def pipeline_run(self, run_id: Any) -> dict[str, Any]:
        """One pipeline run."""
        return await self._call("GET", f"/v1/pipeline-runs/{run_id}")

    async def triggers(self, model: str) -> list[dict[str, Any]]:
        """The model's recorded triggers, newest first."""
        data = await self._call("GET", "/v1/triggers", params={"model": model, "limit": 20})
        return list(data.get("triggers", []))

    async def routes(self) -> dict[str, Any]:
        """The route table."""
        return await self._call("GET", "/v1/routes")

    async def start_pipeline_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Start a pipeline run."""
        return await self._call("POST", "/v1/pipeline-runs", json=dict(body))

    async def start_rollout(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Start a rollout."""
        return await self._call("POST", "/v1/rollouts", json=dict(body))
