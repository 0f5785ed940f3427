"""Questions to the evaluation service: a rollout's judgment, as an event for the machine.

``EvaluationClient.ask`` turns an :class:`AskEvaluation` into ``GET /v1/compare`` (canary
steps, shadow) or ``GET /v1/experiments/{id}`` (A/B) and the answer into a :class:`Verdict`,
or into :class:`EvaluationUnreachable` when there is no usable answer, so that the rollout
pauses instead of advancing blind:

- connection refused, timeout, 5xx: evaluation is down or broken (outcome ``unreachable``);
- any other 4xx, or a 200 that is not a verdict: a bug in this request or in evaluation's
  answer, or a model evaluation does not know (outcome ``invalid``); the error says so.

"No predictions in the window" (evaluation's 404 when neither version served yet) is not a
failure: it is INCONCLUSIVE on 0 samples (DESIGN §3: not enough data is INCONCLUSIVE), so the
phase's wait and ``on_timeout`` apply as for any other lack of data.

A/B arms: the route table gives each version of an experiment the gateway's default arm name
``arm-<version>``; the champion's arm is the control, the candidate's the one judged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import orjson

from orchard_retraining.metrics import RetrainingMetrics
from orchard_retraining.rollouts import AskEvaluation, EvaluationUnreachable, Verdict

__all__ = ["EvaluationClient", "arm_name"]

_log = logging.getLogger("orchard.retraining.evaluation")
_MAX_ANSWER_BYTES: Final = 16 * 1024 * 1024
_NO_DATA: Final = "no predictions"
# evaluation's experiments endpoint needs at least two observations per arm.
_EXPERIMENT_MIN_SAMPLES: Final = 2


def arm_name(version: str) -> str:
    """The gateway's arm name for an A/B version listed without its own ``arm``."""
    return f"arm-{version}"


class _Invalid(Exception):
    """The answer came, but it is not one the controller can use."""


class EvaluationClient:
    """Asks evaluation at ``base_url`` (``None``: not configured, every ask is unreachable).

    The aiohttp session is owned by the app (one per process) and passed in.
    """

    def __init__(
        self,
        base_url: str | None,
        session: aiohttp.ClientSession | None,
        metrics: RetrainingMetrics,
        *,
        timeout_s: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self._session = session
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def ask(self, action: AskEvaluation) -> Verdict | EvaluationUnreachable:
        """Evaluation's judgment for ``action``, or why there is none."""
        if self.base_url is None or self._session is None:
            self._metrics.evaluation_requests.labels("unreachable").inc()
            return EvaluationUnreachable(
                "no evaluation service is configured (ORCHARD_RETRAINING_EVALUATION_URL)"
            )
        url, params = self._question(action)
        try:
            status, body = await self._get(url, params)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._metrics.evaluation_requests.labels("unreachable").inc()
            return EvaluationUnreachable(f"{url} is unreachable: {str(exc) or type(exc).__name__}")
        try:
            verdict = self._verdict(action, status, body, url)
        except _Invalid as exc:
            self._metrics.evaluation_requests.labels("invalid").inc()
            _log.error("evaluation gave no usable answer: %s", exc)
            return EvaluationUnreachable(str(exc))
        if verdict is None:
            self._metrics.evaluation_requests.labels("unreachable").inc()
            return EvaluationUnreachable(f"{url} answered HTTP {status}: {_error_text(body)}")
        self._metrics.evaluation_requests.labels("ok").inc()
        return verdict

    def _question(self, action: AskEvaluation) -> tuple[str, dict[str, str]]:
        if action.kind == "experiment":
            if not action.experiment:
                raise ValueError("an experiment question needs the experiment id")
            weight = action.candidate_weight if action.candidate_weight is not None else 0.5
            params = {
                "control": arm_name(action.baseline),
                "weights": orjson.dumps(
                    {arm_name(action.baseline): 1.0 - weight, arm_name(action.candidate): weight}
                ).decode(),
                "since": _number(action.since),
                "min_samples": str(max(_EXPERIMENT_MIN_SAMPLES, action.min_samples)),
            }
            if "alpha" in action.compare:
                params["alpha"] = _number(action.compare["alpha"])
            return f"{self.base_url}/v1/experiments/{action.experiment}", params
        params = {
            "model": action.model,
            "baseline": action.baseline,
            "candidate": action.candidate,
            "since": _number(action.since),
            "min_samples": str(action.min_samples),
        }
        if action.candidate_weight is not None and 0 < action.candidate_weight < 1:
            params["candidate_weight"] = _number(action.candidate_weight)
        if action.candidate_shadow:
            params["candidate_shadow"] = "true"
        params.update({name: _number(value) for name, value in action.compare.items()})
        return f"{self.base_url}/v1/compare", params

    async def _get(self, url: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        assert self._session is not None  # checked by ask()
        async with self._session.get(
            url, params=params, timeout=self._timeout, headers={"Accept": "application/json"}
        ) as reply:
            return reply.status, await reply.content.read(_MAX_ANSWER_BYTES)

    def _verdict(self, action: AskEvaluation, status: int, body: bytes, url: str) -> Verdict | None:
        """The verdict in an answer; ``None`` for a 5xx (evaluation is broken: unreachable).

        Raises:
            _Invalid: a 4xx other than "no data yet", or a 200 without a valid verdict.
        """
        if status >= 500:
            return None
        if status == 404 and _error_text(body).startswith(_NO_DATA):
            return _no_data(action, _error_text(body))
        if status != 200:
            raise _Invalid(
                f"evaluation refused the question (HTTP {status}: {_error_text(body)}); a bug "
                f"in the controller's request or a model evaluation does not know ({url})"
            )
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _Invalid(f"evaluation's answer from {url} is not JSON") from None
        if not isinstance(payload, dict):
            raise _Invalid(f"evaluation's answer from {url} is not a JSON object")
        if action.kind == "experiment":
            payload = _experiment_verdict(payload, arm_name(action.candidate))
        try:
            return Verdict.from_compare(payload, since=action.since)
        except ValueError as exc:
            raise _Invalid(f"evaluation's answer from {url} is not a verdict: {exc}") from None


def _experiment_verdict(payload: dict[str, Any], arm: str) -> dict[str, Any]:
    """The experiment answer with the candidate arm's verdict and sizes on top.

    A sample-ratio mismatch makes a PASS INCONCLUSIVE: a broken split biases the result, and
    a candidate is never promoted on biased data (a FAIL stays a FAIL: rolling back is safe).
    """
    comparisons = payload.get("comparisons")
    found = None
    if isinstance(comparisons, list):
        found = next(
            (c for c in comparisons if isinstance(c, Mapping) and c.get("arm") == arm), None
        )
    if found is None:
        # The candidate arm has no traffic yet (only control answered): no judgment possible.
        return {**payload, "verdict": "INCONCLUSIVE", "sample_sizes": {"candidate": 0}}
    sizes = found.get("sample_sizes")
    samples = sizes.get("arm") if isinstance(sizes, Mapping) else None
    control = sizes.get("control") if isinstance(sizes, Mapping) else None
    verdict = found.get("verdict")
    srm = payload.get("srm")
    if verdict == "PASS" and isinstance(srm, Mapping) and srm.get("mismatch"):
        verdict = "INCONCLUSIVE"
    return {
        **payload,
        "verdict": verdict,
        "sample_sizes": {"baseline": control, "candidate": samples},
    }


def _no_data(action: AskEvaluation, reason: str) -> Verdict:
    payload = {
        "verdict": "INCONCLUSIVE",
        "reason": reason,
        "sample_sizes": {"baseline": 0, "candidate": 0},
    }
    return Verdict("INCONCLUSIVE", payload, samples=0, since=action.since)


def _error_text(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode(errors="replace").strip()
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])[:500]
    return body[:200].decode(errors="replace").strip()


def _number(value: float) -> str:
    return repr(float(value))
