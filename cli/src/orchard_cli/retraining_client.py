"""The retraining service's HTTP API, for the ``orchard rollout`` and ``orchard pipeline`` commands.

Errors::

    RetrainingError
    ├── RetrainingUnreachable   no answer: connection refused, timeout, or a 5xx (an outage)
    └── RetrainingAPIError      a 4xx: the service understood and refused (its ``error`` text)

:func:`retry_while_unreachable` turns brief outages into retries and a long one into
:class:`RetrainingUnreachable`, so a CI job can tell "the rollout failed" from "the service
was down".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, TypeVar

import httpx
import typer
from rich.console import Console

__all__ = [
    "API_ERROR",
    "DEFAULT_RETRAINING_URL",
    "UNREACHABLE",
    "OutageNotice",
    "PollInterval",
    "RetrainingAPIError",
    "RetrainingClient",
    "RetrainingError",
    "RetrainingUnreachable",
    "RetrainingUrl",
    "UnreachableTimeout",
    "exit_for",
    "retry_while_unreachable",
]

DEFAULT_RETRAINING_URL: Final = "http://127.0.0.1:8003"

T = TypeVar("T")


class RetrainingError(Exception):
    """Base class of what :class:`RetrainingClient` raises."""


class RetrainingUnreachable(RetrainingError):
    """No usable answer: the service is down, too slow, or failing (5xx).

    ``sent`` is False when the request surely never reached the service (connection refused),
    so that even a ``POST`` is safe to send again.
    """

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class RetrainingAPIError(RetrainingError):
    """The service refused the request (4xx); ``message`` is its ``error`` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"retraining refused the request ({status}): {message}")
        self.status = status
        self.message = message


class RetrainingClient:
    """A thin synchronous client of the retraining service's ``/v1`` API.

    Args:
        base_url: The service, e.g. ``http://127.0.0.1:8003``.
        client: An ``httpx.Client`` to send through (tests pass a mock transport); by default
            one with a 10 s timeout that ignores proxy variables (the service is usually local).
    """

    def __init__(self, base_url: str, client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = client or httpx.Client(timeout=10.0, trust_env=False)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> RetrainingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        url = f"{self.base_url}{path}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, url, json=json, params=query)
        except httpx.ConnectError as e:
            raise RetrainingUnreachable(
                f"cannot connect to retraining at {self.base_url} (is it running?)", sent=False
            ) from e
        except httpx.TimeoutException as e:
            raise RetrainingUnreachable(f"retraining at {self.base_url} did not answer") from e
        except httpx.HTTPError as e:
            raise RetrainingUnreachable(f"retraining at {self.base_url}: {e}") from e
        if response.status_code >= 500:
            raise RetrainingUnreachable(
                f"retraining answered {response.status_code}: {_error_text(response)}"
            )
        if response.status_code >= 400:
            raise RetrainingAPIError(response.status_code, _error_text(response))
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, path, **kwargs)
        try:
            data = response.json()
        except ValueError as e:
            raise RetrainingUnreachable(f"retraining answered {path} with non-JSON") from e
        if not isinstance(data, dict):
            raise RetrainingUnreachable(f"retraining answered {path} with {type(data).__name__}")
        return data

    # --- rollouts ---
    def start_rollout(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/rollouts``: the new rollout."""
        return self._json("POST", "/v1/rollouts", json=dict(body))

    def list_rollouts(self, model: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Rollouts, newest first."""
        data = self._json("GET", "/v1/rollouts", params={"model": model, "limit": limit})
        return list(data.get("rollouts", []))

    def get_rollout(self, rollout_id: int | str) -> dict[str, Any]:
        """One rollout with its state and decisions."""
        return self._json("GET", f"/v1/rollouts/{rollout_id}")

    def promote_rollout(self, rollout_id: int | str, **by_hand: str | None) -> dict[str, Any]:
        """Promote now (``actor``, ``reason``); 409 when the rollout is finished."""
        body = {k: v for k, v in by_hand.items() if v is not None}
        return self._json("POST", f"/v1/rollouts/{rollout_id}/promote", json=body)

    def abort_rollout(self, rollout_id: int | str, **by_hand: str | None) -> dict[str, Any]:
        """Abort now (``actor``, ``reason``); 409 when the rollout is finished."""
        body = {k: v for k, v in by_hand.items() if v is not None}
        return self._json("POST", f"/v1/rollouts/{rollout_id}/abort", json=body)

    # --- pipeline runs ---
    def start_pipeline_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/pipeline-runs``: the new run."""
        return self._json("POST", "/v1/pipeline-runs", json=dict(body))

    def list_pipeline_runs(
        self, model: str | None = None, status: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Pipeline runs, newest first."""
        params = {"model": model, "status": status, "limit": limit}
        data = self._json("GET", "/v1/pipeline-runs", params=params)
        return list(data.get("runs", data.get("pipeline_runs", [])))

    def get_pipeline_run(self, run_id: int | str) -> dict[str, Any]:
        """One pipeline run."""
        return self._json("GET", f"/v1/pipeline-runs/{run_id}")

    def pipeline_logs(self, run_id: int | str, tail: int | None = None) -> str:
        """The run's log (its last ``tail`` lines)."""
        return self._request("GET", f"/v1/pipeline-runs/{run_id}/logs", params={"tail": tail}).text

    def cancel_pipeline_run(self, run_id: int | str) -> dict[str, Any]:
        """Cancel a pending or running run."""
        return self._json("POST", f"/v1/pipeline-runs/{run_id}/cancel")

    # --- triggers and routes ---
    def triggers(self, model: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Recorded triggers, newest first, with their outcome."""
        data = self._json("GET", "/v1/triggers", params={"model": model, "limit": limit})
        return list(data.get("triggers", []))

    def routes(self) -> dict[str, Any]:
        """The route table the gateways poll."""
        return self._json("GET", "/v1/routes")


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    if isinstance(data, dict) and "detail" in data:  # FastAPI's own validation errors
        return str(data["detail"])[:300]
    return response.text.strip()[:300]


def retry_while_unreachable(
    call: Callable[[], T],
    *,
    timeout_s: float,
    on_retry: Callable[[RetrainingUnreachable], None],
    interval_s: float = 1.0,
    only_unsent: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``call`` until it stops raising :class:`RetrainingUnreachable`.

    ``on_retry`` hears about each failure (to say so on stderr). Once the service has been
    unreachable for ``timeout_s`` the last error is raised; API errors pass straight through.
    ``only_unsent``: retry only requests that never reached the service (for a ``POST``, which
    must not run twice).
    """
    since: float | None = None
    while True:
        try:
            return call()
        except RetrainingUnreachable as e:
            if only_unsent and e.sent:
                raise
            now = clock()
            since = now if since is None else since
            if now - since >= timeout_s:
                raise
            on_retry(e)
            sleep(interval_s)


# --- what the `orchard rollout` and `orchard pipeline` commands share ---

API_ERROR: Final = 2
"""Exit status for a usage error or a request the service refused (as click's usage errors)."""
UNREACHABLE: Final = 3
"""Exit status when retraining stayed unreachable past ``--unreachable-timeout``."""

RetrainingUrl = Annotated[
    str,
    typer.Option(
        "--retraining-url",
        envvar="ORCHARD_RETRAINING_URL",
        help="The retraining service (`orchard up` starts it on port 8003).",
    ),
]
UnreachableTimeout = Annotated[
    float,
    typer.Option(
        "--unreachable-timeout",
        min=0.0,
        envvar="ORCHARD_UNREACHABLE_TIMEOUT",
        help="Seconds of retraining outage to ride out (retrying) before exiting with 3.",
    ),
]

PollInterval = Annotated[
    float, typer.Option("--interval", min=0.01, hidden=True, help="Seconds between polls.")
]


class OutageNotice:
    """Says on stderr, once per outage, that retraining is unreachable and is being retried."""

    def __init__(self, errors: Console, timeout_s: float) -> None:
        self._errors = errors
        self._timeout_s = timeout_s
        self._down = False

    def __call__(self, error: RetrainingUnreachable) -> None:
        """Report a failed attempt (only the first of an outage is printed)."""
        if not self._down:
            self._errors.print(
                f"{error} — retrying for up to {self._timeout_s:g} s",
                markup=False,
                soft_wrap=True,
            )
            self._down = True

    def recovered(self) -> None:
        """Report that a call succeeded again after an outage."""
        if self._down:
            self._errors.print("retraining answers again", markup=False)
            self._down = False


def exit_for(error: RetrainingError, errors: Console) -> typer.Exit:
    """Print ``error`` on stderr and return the exit that goes with it (2 refused, 3 down)."""
    errors.print(f"Error: {error}", markup=False, soft_wrap=True)
    return typer.Exit(UNREACHABLE if isinstance(error, RetrainingUnreachable) else API_ERROR)


def one_or_newest(
    wanted: int | None,
    newest: Callable[[], list[dict[str, Any]]],
    get: Callable[[int], dict[str, Any]],
    *,
    timeout_s: float,
    on_retry: Callable[[RetrainingUnreachable], None],
) -> dict[str, Any] | None:
    """The item with id ``wanted``, else the newest one (``None`` when there is none), each
    call retried through brief outages.

    Raises:
        RetrainingError: it stayed unreachable past the timeout, or refused a request.
    """
    if wanted is None:
        found = retry_while_unreachable(newest, timeout_s=timeout_s, on_retry=on_retry)
        if not found:
            return None
        wanted = int(found[0]["id"])
    chosen = wanted
    return retry_while_unreachable(lambda: get(chosen), timeout_s=timeout_s, on_retry=on_retry)
