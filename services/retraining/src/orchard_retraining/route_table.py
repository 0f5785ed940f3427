"""The route table the gateways poll (``GET /v1/routes``), built from this service's database.

Every model with a known champion (``ChampionRecord``: the models in settings and every model
ever rolled out) and every model with an unfinished rollout gets an entry in the gateway's
full form (DESIGN §3; ``orchard_gateway.routes_table`` parses it)::

    {"models": {"credit-risk": {
        "versions": [{"version": "3", "target_url": "http://…", "weight": 90.0,
                      "role": "champion"},
                     {"version": "4", "target_url": "http://…", "weight": 10.0,
                      "role": "canary"}],
        "mirrors": [{"version": "4", "target_url": "http://…", "percent": 100.0}],
        "sticky_key": "X-Orchard-Unit",
        "experiment": null}}}

Without a rollout the champion takes weight 100. During one the champion has the state's
``champion_weight`` and the candidate its ``candidate_weight`` (role ``canary``; both
``arm`` in an A/B rollout, with its ``experiment``); a version at weight 0 is left out, and a
shadow phase lists the candidate under ``mirrors``. A candidate without a target URL (not
served yet) is left out, its share going to the champion; a model whose champion has no
target URL is left out (never all traffic to a canary).

The body is canonical (sorted keys, no whitespace), so equal tables are equal bytes and the
strong ``ETag`` (a hash of the body) changes exactly when the table does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from orchard_retraining.rollouts import (
    DEFAULT_STICKY_KEY,
    RolloutSpec,
    RolloutState,
    RolloutStatus,
    Strategy,
)

__all__ = ["RenderedRouteTable", "TargetUrl", "build_route_table", "etag_matches", "render"]

TargetUrl = Callable[[str, str], "str | None"]
"""Where a model version is served: ``(model, version) -> base URL`` or ``None``."""

_ETAG_HEX: Final = 32


@dataclass(frozen=True, slots=True)
class RenderedRouteTable:
    """The table as served: canonical JSON and its strong ETag (quoted)."""

    body: bytes
    etag: str


def build_route_table(
    champions: Mapping[str, str],
    rollouts: Iterable[tuple[RolloutSpec, RolloutState]],
    target_url: TargetUrl,
) -> dict[str, Any]:
    """The route table for these champions and unfinished rollouts (one per model)."""
    models: dict[str, dict[str, Any]] = {}
    for model, version in champions.items():
        url = target_url(model, version)
        if url is not None:
            models[model] = _entry([_version(version, url, 100.0, "champion")], [], None, None)
    for spec, state in rollouts:
        if state.terminal or state.status is RolloutStatus.PENDING:
            continue
        entry = _rollout_entry(spec, state, target_url)
        if entry is None:
            models.pop(spec.model, None)
        else:
            models[spec.model] = entry
    return {"models": models}


def render(table: Mapping[str, Any]) -> RenderedRouteTable:
    """Serialize ``table`` canonically and hash it."""
    body = orjson.dumps(table, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(body).hexdigest()[:_ETAG_HEX]
    return RenderedRouteTable(body, f'"{digest}"')


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, RFC 9110)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def _rollout_entry(
    spec: RolloutSpec, state: RolloutState, target_url: TargetUrl
) -> dict[str, Any] | None:
    ab = spec.strategy is Strategy.AB
    champion_url = target_url(spec.model, spec.champion_version)
    candidate_url = target_url(spec.model, spec.candidate_version)
    if champion_url is None:
        return None  # never send a canary all the traffic because the champion's URL is unknown
    versions: list[dict[str, Any]] = []
    if state.champion_weight > 0:
        role = "arm" if ab else "champion"
        versions.append(_version(spec.champion_version, champion_url, state.champion_weight, role))
    if candidate_url is not None and state.candidate_weight > 0:
        role = "arm" if ab else "canary"
        versions.append(
            _version(spec.candidate_version, candidate_url, state.candidate_weight, role)
        )
    mirrors: list[dict[str, Any]] = []
    if candidate_url is not None and state.mirror_percent > 0:
        mirrors.append(
            {
                "version": spec.candidate_version,
                "target_url": candidate_url,
                "percent": float(state.mirror_percent),
            }
        )
    return _entry(versions, mirrors, spec.sticky_key, spec.experiment_id if ab else None)


def _version(version: str, url: str, weight: float, role: str) -> dict[str, Any]:
    return {"version": version, "target_url": url, "weight": float(weight), "role": role}


def _entry(
    versions: list[dict[str, Any]],
    mirrors: list[dict[str, Any]],
    sticky_key: str | None,
    experiment: str | None,
) -> dict[str, Any]:
    return {
        "versions": versions,
        "mirrors": mirrors,
        "sticky_key": sticky_key or DEFAULT_STICKY_KEY,
        "experiment": experiment,
    }
