"""The route table: which backends serve each model, at which versions, with what weights.

The full form (DESIGN §3; what retraining's ``GET /v1/routes`` serves, as JSON)::

    models:
      credit-risk:
        sticky_key: X-Orchard-Unit        # header (or request parameter) naming the unit
        experiment: exp-42                # optional: an A/B test is running
        versions:
          - {version: "3", target_url: "http://runtime-3:8080", weight: 90, role: champion}
          - {version: "4", target_url: "http://runtime-4:8080", weight: 10, role: canary}
        mirrors:
          - {version: "5", target_url: "http://runtime-5:8080", percent: 20}

and the short form ``orchard up`` writes for one version:
``credit-risk: {backend: "http://127.0.0.1:8080", version: "1"}``.

A table is immutable; sources (``route_sources``) swap a new one in with one assignment, so a
request sees either the old table or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

import orjson
import yaml

from orchard_core.errors import ModelNotFound

__all__ = [
    "DEFAULT_STICKY_KEY",
    "ROLES",
    "Mirror",
    "ModelRoutes",
    "Route",
    "RouteTable",
    "RouteTableError",
    "parse_route_table",
    "unit_position",
]

# Names and versions become URL path segments, so they stay within a safe alphabet.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Header or request-parameter names: RFC 9110 token characters, kept short.
_KEY = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
_LISTED_IN_ERRORS: Final = 10
_HASH_SPACE: Final = float(1 << 64)
DEFAULT_STICKY_KEY: Final = "X-Orchard-Unit"
ROLES: Final = ("champion", "canary", "arm")


class RouteTableError(ValueError):
    """The route table is missing, unreadable or invalid; the message says where."""


@dataclass(frozen=True, slots=True)
class Route:
    """One place a model is served: backend base URL (no trailing slash) and version.

    ``arm`` names it in headers, metrics and events: the role for a champion or canary,
    ``arm-<version>`` (or the entry's own ``arm``) for an A/B arm, ``shadow`` for a mirror.
    """

    model: str
    backend: str
    version: str
    role: str = "champion"
    arm: str = "champion"
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Mirror:
    """A version that gets a copy of ``percent`` % of a model's traffic; answers discarded."""

    route: Route
    percent: float


def unit_position(scope: str, unit: str) -> float:
    """Where ``unit`` falls in [0, 1) for ``scope`` (experiment or model): a stable hash."""
    digest = hashlib.blake2b(f"{scope}\x00{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SPACE


@dataclass(frozen=True, slots=True)
class ModelRoutes:
    """How one model's traffic is split between its versions, and which versions shadow it."""

    model: str
    versions: tuple[Route, ...]
    mirrors: tuple[Mirror, ...] = ()
    sticky_key: str = DEFAULT_STICKY_KEY
    experiment: str | None = None
    _bounds: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _champion: Route = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        total = sum(route.weight for route in self.versions)
        if not self.versions or total <= 0:
            raise RouteTableError(f"model '{self.model}': no version has a positive weight")
        object.__setattr__(
            self, "_bounds", tuple(w / total for w in accumulate(r.weight for r in self.versions))
        )
        champions = [r for r in self.versions if r.role == "champion"]
        # No champion (an A/B test between arms): the heaviest version takes fallbacks.
        champion = champions[0] if champions else max(self.versions, key=lambda r: r.weight)
        object.__setattr__(self, "_champion", champion)

    @property
    def champion(self) -> Route:
        """Where traffic falls back to when another version's backend is down."""
        return self._champion

    @property
    def backend(self) -> str:
        """The champion's backend (the model-level endpoints ask it)."""
        return self._champion.backend

    @property
    def version(self) -> str:
        """The champion's version."""
        return self._champion.version

    def assign(self, unit: str | None, rand: Callable[[], float] = random.random) -> Route:
        """The version serving this request: by a stable hash of ``unit``, else at random.

        A unit keeps its version as long as the weights stay the same.
        """
        if len(self.versions) == 1:
            return self.versions[0]
        position = rand() if unit is None else unit_position(self.experiment or self.model, unit)
        for route, bound in zip(self.versions, self._bounds, strict=True):
            if position < bound and route.weight > 0:
                return route
        return self._champion  # rounding at the very top of [0, 1)

    def pinned(self, version: str) -> Route:
        """The route of an explicitly requested version (a mirror's included).

        Raises:
            ModelNotFound: this model is not routed at ``version`` here.
        """
        for route in self.versions:
            if route.version == version:
                return route
        for mirror in self.mirrors:
            if mirror.route.version == version:
                return mirror.route
        routed = ", ".join(f"'{r.version}'" for r in self.versions)
        plural = "s" if len(self.versions) > 1 else ""
        raise ModelNotFound(
            f"model '{self.model}' has no version '{version}' here;"
            f" this gateway routes version{plural} {routed}"
        )


class RouteTable(Mapping[str, ModelRoutes]):
    """An immutable mapping of model name to ``ModelRoutes``."""

    __slots__ = ("_routes",)

    def __init__(self, routes: Mapping[str, ModelRoutes] | None = None) -> None:
        self._routes: Mapping[str, ModelRoutes] = MappingProxyType(dict(routes or {}))

    def __getitem__(self, model: str) -> ModelRoutes:
        return self._routes[model]

    def __iter__(self) -> Iterator[str]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def __repr__(self) -> str:
        return f"RouteTable({dict(self._routes)!r})"

    @property
    def models(self) -> list[str]:
        """The routed model names, sorted."""
        return sorted(self._routes)

    def model(self, model: str) -> ModelRoutes:
        """The routes of ``model``.

        Raises:
            ModelNotFound: the model is not routed here.
        """
        routes = self._routes.get(model)
        if routes is None:
            raise ModelNotFound(f"model '{model}' is not routed by this gateway{self._known()}")
        return routes

    def resolve(self, model: str, version: str | None = None) -> Route:
        """The champion of ``model``, or its route at ``version`` when one is asked for.

        Raises:
            ModelNotFound: the model is not routed here, or not at that version.
        """
        routes = self.model(model)
        return routes.champion if version is None else routes.pinned(version)

    def _known(self) -> str:
        if not self._routes:
            return " (no models are routed)"
        if len(self._routes) > _LISTED_IN_ERRORS:
            return f" ({len(self._routes)} models are routed; GET /v2/models lists them)"
        return " (routed models: " + ", ".join(self.models) + ")"


def _url(where: str, value: Any, key: str = "target_url") -> str:
    if not isinstance(value, str) or not value.strip():
        raise RouteTableError(f"{where}: '{key}' must be an http(s) URL string")
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise RouteTableError(f"{where}: backend {value!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RouteTableError(
            f"{where}: backend {value!r} is not an http(s) URL like http://host:8080"
        )
    if parts.query or parts.fragment:
        raise RouteTableError(f"{where}: backend {value!r} must not have a query")
    return url


def _version(where: str, value: Any) -> str:
    # YAML reads `version: 1` as a number; registry versions are strings, so accept both.
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise RouteTableError(f"{where}: 'version' must be a non-empty string")
    if not _NAME.fullmatch(value):
        raise RouteTableError(
            f"{where}: version {value!r} may only use letters, digits, '.', '_' and '-'"
        )
    return value


def _number(where: str, name: str, value: Any, *, most: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise RouteTableError(f"{where}: '{name}' must be a number")
    if value < 0 or (most is not None and value > most) or value == float("inf"):
        limit = f"0..{most:g}" if most is not None else "0 or more"
        raise RouteTableError(f"{where}: '{name}' must be {limit}, not {value}")
    return float(value)


def _mapping(
    where: str, entry: Any, required: tuple[str, ...], allowed: set[str]
) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise RouteTableError(f"{where}: expected a mapping with {', '.join(required)}")
    for key in required:
        if key not in entry:
            raise RouteTableError(f"{where}: '{key}' is required")
    unknown = sorted(str(k) for k in entry if k not in allowed)
    if unknown:
        raise RouteTableError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")
    return entry


_VERSION_KEYS = {"version", "target_url", "weight", "role", "arm"}
_MIRROR_KEYS = {"version", "target_url", "percent"}
_MODEL_KEYS = {"versions", "mirrors", "sticky_key", "experiment", "backend", "version"}


def _arm_route(model: str, index: int, entry: Any) -> Route:
    where = f"model '{model}' versions[{index}]"
    entry = _mapping(where, entry, ("version", "target_url"), _VERSION_KEYS)
    version = _version(where, entry["version"])
    role = entry.get("role", "champion")
    if role not in ROLES:
        raise RouteTableError(f"{where}: 'role' must be one of {', '.join(ROLES)}, not {role!r}")
    arm = entry.get("arm", role if role != "arm" else f"arm-{version}")
    if not isinstance(arm, str) or not _NAME.fullmatch(arm):
        raise RouteTableError(f"{where}: 'arm' must be a short name (letters, digits, . _ -)")
    weight = _number(where, "weight", entry.get("weight", 100), most=1e6)
    return Route(model, _url(where, entry["target_url"]), version, role, arm, weight)


def _mirror(model: str, index: int, entry: Any) -> Mirror:
    where = f"model '{model}' mirrors[{index}]"
    entry = _mapping(where, entry, ("version", "target_url", "percent"), _MIRROR_KEYS)
    route = Route(
        model,
        _url(where, entry["target_url"]),
        _version(where, entry["version"]),
        "shadow",
        "shadow",
        0.0,
    )
    return Mirror(route, _number(where, "percent", entry["percent"], most=100))


def _list(where: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RouteTableError(f"{where} must be a list")
    return value


def _model_routes(model: Any, entry: Any) -> ModelRoutes:
    if not isinstance(model, str) or not _NAME.fullmatch(model):
        raise RouteTableError(
            f"model name {model!r} is invalid: use letters, digits, '.', '_' and '-'"
            " (at most 128, starting with a letter or digit)"
        )
    where = f"model '{model}'"
    if (
        isinstance(entry, dict)
        and "versions" not in entry
        and ("backend" in entry or "version" in entry)
    ):
        entry = _mapping(where, entry, ("backend", "version"), {"backend", "version"})
        route = Route(
            model, _url(where, entry["backend"], "backend"), _version(where, entry["version"])
        )
        return ModelRoutes(model, (route,))
    entry = _mapping(where, entry, ("versions",), _MODEL_KEYS - {"backend", "version"})
    versions = tuple(
        _arm_route(model, i, e) for i, e in enumerate(_list(f"{where} versions", entry["versions"]))
    )
    if not versions:
        raise RouteTableError(f"{where}: 'versions' must list at least one version")
    seen = [r.version for r in versions]
    if len(set(seen)) != len(seen):
        raise RouteTableError(f"{where}: a version is listed twice in 'versions': {seen}")
    if sum(r.role == "champion" for r in versions) > 1:
        raise RouteTableError(f"{where}: more than one version has the role 'champion'")
    mirrors = tuple(
        _mirror(model, i, e) for i, e in enumerate(_list(f"{where} mirrors", entry.get("mirrors")))
    )
    sticky_key = entry.get("sticky_key") or DEFAULT_STICKY_KEY
    if not isinstance(sticky_key, str) or not _KEY.fullmatch(sticky_key):
        raise RouteTableError(f"{where}: 'sticky_key' must be a header or parameter name")
    experiment = entry.get("experiment")
    if experiment is not None and (
        not isinstance(experiment, str) or not _NAME.fullmatch(experiment)
    ):
        raise RouteTableError(f"{where}: 'experiment' must be a short id (letters, digits, . _ -)")
    return ModelRoutes(model, versions, mirrors, sticky_key, experiment)


def parse_route_table(text: str | bytes, *, json: bool = False) -> RouteTable:
    """Parse and validate a route table document (YAML, or JSON when ``json``).

    Raises:
        RouteTableError: the document is not a valid route table; the message says why.
    """
    try:
        document = orjson.loads(text) if json else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if json else "YAML"
        raise RouteTableError(f"not valid {kind}: {exc}") from None
    if not isinstance(document, dict) or "models" not in document:
        raise RouteTableError("expected a mapping with a 'models' key")
    models = document["models"]
    if models is None:  # `models:` with nothing under it: no model routed yet
        return RouteTable()
    if not isinstance(models, dict):
        raise RouteTableError("'models' must map each model name to its routes")
    return RouteTable({str(name): _model_routes(name, entry) for name, entry in models.items()})
