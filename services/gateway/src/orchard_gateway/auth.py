"""API-key authentication, role checks and per-key rate limiting for the gateway.

Self-contained: nothing here is wired into routes yet, and nothing is registered globally.

Keys
    A client presents its secret as ``Authorization: Bearer <secret>`` or ``X-API-Key: <secret>``.
    The store keeps only ``HMAC-SHA256(pepper, secret)`` of each key, never the secret. API keys
    are long random strings (``secrets.token_urlsafe(32)``: 256 bits), so a slow password hash
    buys nothing: nobody can brute-force 2**256 inputs however fast the hash is. It would cost
    the hot path dearly instead (measured on the dev box: HMAC-SHA256 ~1.2 us per request,
    scrypt n=2**14 ~27 ms, PBKDF2-SHA256 600k rounds ~117 ms). The pepper (a server-side secret,
    ``ORCHARD_GATEWAY_API_KEY_PEPPER``) means a leaked key file alone cannot be used to test
    guesses offline. The lookup is a dict lookup by digest, then ``hmac.compare_digest`` on the
    match; any timing difference can only reveal bits of an HMAC output, which does not help
    to forge a secret.

Config format (a YAML or JSON file, or the JSON value of ``ORCHARD_GATEWAY_API_KEYS``)::

    keys:                     # or a bare list at top level
      - id: team-a            # unique, shown in logs and metrics (never the secret)
        hash: hmac-sha256:9f86...   # from `python -m orchard_gateway.auth <secret>`
        roles: [predict]      # subset of {"predict", "admin"}
        rate_per_s: 10        # steady refill rate of the token bucket (> 0)
        burst: 20             # bucket size: requests allowed at once (>= 1)
      - id: local-dev
        secret: "..."         # plaintext is accepted (hashed at load, then dropped); prefer hash

Errors
    ``Unauthorized`` (401) for a missing, malformed or unknown key. The wiring must add
    ``WWW-Authenticate`` (see ``UNAUTHORIZED_HEADERS``) to 401 answers, as RFC 6750 asks.
    ``Forbidden`` (403) when a known key lacks a role. ``TooManyRequests`` (429) when the key's
    bucket is empty; add ``RateLimiter.headers(decision)`` to the answer (``Retry-After``).
    Messages name the key id at most, never the secret.

Rate-limit headers
    ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (integer seconds, as in
    draft-ietf-httpapi-ratelimit-headers up to -06 and what most clients parse today), plus
    ``Retry-After`` (RFC 9110, integer seconds) on refusals.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from orchard_core.errors import Forbidden, OrchardError, Unauthorized
from orchard_core.errors import TooManyRequests as CoreTooManyRequests

__all__ = [
    "ALL_ROLES",
    "API_KEYS_ENV",
    "API_KEY_PEPPER_ENV",
    "UNAUTHORIZED_HEADERS",
    "ApiKey",
    "AuthConfigError",
    "AuthDisabled",
    "Forbidden",
    "KeyStore",
    "RateDecision",
    "RateLimiter",
    "TooManyRequests",
    "hash_key",
    "require",
]

_log = logging.getLogger("orchard.gateway.auth")

ROLE_PREDICT: Final = "predict"
ROLE_ADMIN: Final = "admin"
ALL_ROLES: Final[frozenset[str]] = frozenset({ROLE_PREDICT, ROLE_ADMIN})

API_KEYS_ENV: Final = "ORCHARD_GATEWAY_API_KEYS"
API_KEY_PEPPER_ENV: Final = "ORCHARD_GATEWAY_API_KEY_PEPPER"
UNAUTHORIZED_HEADERS: Final[Mapping[str, str]] = {"WWW-Authenticate": 'Bearer realm="orchard"'}

_HASH_PREFIX: Final = "hmac-sha256:"


class TooManyRequests(CoreTooManyRequests):
    """The key's rate limit is spent for now (429); carries the decision."""

    def __init__(self, message: str, decision: RateDecision) -> None:
        super().__init__(message)
        self.decision = decision

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` and ``RateLimit-*``: core's error handler sends them with the 429."""
        return RateLimiter.headers(self.decision)


class AuthConfigError(OrchardError):
    """The API-key configuration is malformed; the message names its source (500)."""


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A known client: who it is, what it may do, how fast. Holds no secret material."""

    key_id: str
    roles: frozenset[str]
    rate_per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not self.key_id:
            raise ValueError("key_id must not be empty")
        unknown = self.roles - ALL_ROLES
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; known: {sorted(ALL_ROLES)}")
        if not self.rate_per_s > 0:
            raise ValueError(f"rate_per_s must be > 0, got {self.rate_per_s}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")


AuthDisabled: Final[ApiKey] = ApiKey(
    key_id="<auth-disabled>", roles=ALL_ROLES, rate_per_s=math.inf, burst=1_000_000
)
"""The key every request gets when auth is disabled: all roles, no rate limit."""


def hash_key(secret: str, pepper: str = "") -> str:
    """The stored form of ``secret``: ``hmac-sha256:<hex>``, keyed with the store's pepper."""
    if not secret:
        raise ValueError("an API key must not be empty")
    digest = hmac.new(pepper.encode(), secret.encode(), hashlib.sha256).hexdigest()
    return _HASH_PREFIX + digest


def require(key: ApiKey, role: str) -> None:
    """Raise ``Forbidden`` unless ``key`` has ``role``."""
    if role not in ALL_ROLES:
        raise ValueError(f"unknown role {role!r}")
    if role not in key.roles:
        raise Forbidden(f"API key {key.key_id!r} lacks the {role!r} role")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for k, v in headers.items():
        if k.lower() == lowered:
            return v
    return None


def _presented_secret(headers: Mapping[str, str]) -> str:
    auth = _header(headers, "Authorization")
    x_key = _header(headers, "X-API-Key")
    bearer: str | None = None
    if auth is not None:
        scheme, _, rest = auth.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized("unsupported Authorization scheme; use 'Bearer <api key>'")
        bearer = rest.strip()
        if not bearer:
            raise Unauthorized("empty bearer token")
    if x_key is not None:
        x_key = x_key.strip()
        if not x_key:
            raise Unauthorized("empty X-API-Key header")
    # Compared as bytes: header values are latin-1 text, and compare_digest refuses non-ASCII str.
    if (
        bearer is not None
        and x_key is not None
        and not hmac.compare_digest(
            bearer.encode("latin-1", "replace"), x_key.encode("latin-1", "replace")
        )
    ):
        raise Unauthorized("Authorization and X-API-Key carry different keys")
    secret = bearer if bearer is not None else x_key
    if secret is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")
    return secret


class KeyStore:
    """The known API keys, by HMAC digest; or, when disabled, a store that lets all in."""

    def __init__(
        self,
        keys: Iterable[tuple[str, ApiKey]] = (),
        *,
        pepper: str = "",
        disabled: bool = False,
    ) -> None:
        """``keys`` pairs each stored hash (``hash_key``'s output) with its ``ApiKey``."""
        self._pepper = pepper.encode()
        self._by_digest: dict[bytes, tuple[bytes, ApiKey]] = {}
        self._disabled = disabled
        ids: set[str] = set()
        for stored, key in keys:
            digest = _parse_hash(stored)
            if key.key_id in ids:
                raise ValueError(f"duplicate API key id {key.key_id!r}")
            if digest in self._by_digest:
                raise ValueError(f"API key {key.key_id!r} has the same hash as another key")
            ids.add(key.key_id)
            self._by_digest[digest] = (digest, key)
        if disabled:
            if self._by_digest:
                raise ValueError("a disabled key store takes no keys")
            _log.warning(
                "AUTHENTICATION IS DISABLED: every request is accepted with all roles and no "
                "rate limit. Never run a reachable gateway like this."
            )

    @classmethod
    def disabled(cls) -> KeyStore:
        """A store that authenticates every request as ``AuthDisabled`` (logs a WARNING)."""
        return cls(disabled=True)

    @classmethod
    def from_entries(cls, entries: object, *, source: str, pepper: str = "") -> KeyStore:
        """Build a store from parsed config (a list, or ``{"keys": [...]}``) from ``source``."""
        if isinstance(entries, Mapping) and set(entries) == {"keys"}:
            entries = entries["keys"]
        if not isinstance(entries, list):
            raise AuthConfigError(
                f"{source}: expected a list of keys (or a mapping with only 'keys'), "
                f"got {type(entries).__name__}"
            )
        pairs = [_parse_entry(e, source, i, pepper) for i, e in enumerate(entries)]
        try:
            return cls(pairs, pepper=pepper)
        except ValueError as exc:
            raise AuthConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: Path, *, pepper: str = "") -> KeyStore:
        """Load keys from a YAML or JSON file (JSON is YAML, so one parser reads both)."""
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise AuthConfigError(f"{source}: cannot read: {exc.strerror}") from None
        try:
            data: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            # The problem mark gives line/column only; never echo the text (it may hold secrets).
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise AuthConfigError(f"{source}: not valid YAML/JSON{where}") from None
        return cls.from_entries(data, source=source, pepper=pepper)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyStore:
        """Load keys from ``ORCHARD_GATEWAY_API_KEYS`` (JSON) with the pepper from its env var."""
        env = os.environ if environ is None else environ
        pepper = env.get(API_KEY_PEPPER_ENV, "")
        raw = env.get(API_KEYS_ENV)
        if raw is None or not raw.strip():
            raise AuthConfigError(f"${API_KEYS_ENV} is not set")
        try:
            data: Any = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise AuthConfigError(
                f"${API_KEYS_ENV}: not valid JSON at line {exc.lineno}, column {exc.colno}"
            ) from None
        return cls.from_entries(data, source=f"${API_KEYS_ENV}", pepper=pepper)

    @property
    def is_disabled(self) -> bool:
        return self._disabled

    def __len__(self) -> int:
        return len(self._by_digest)

    def __repr__(self) -> str:
        if self._disabled:
            return "KeyStore(disabled)"
        return f"KeyStore({len(self._by_digest)} keys)"

    def lookup(self, secret: str) -> ApiKey | None:
        """The key whose secret is ``secret``, or None."""
        if self._disabled:
            return AuthDisabled
        digest = hmac.new(self._pepper, secret.encode(), hashlib.sha256).digest()
        found = self._by_digest.get(digest)
        if found is None:
            return None
        # The dict matched on the digest; confirm in constant time (belt and braces).
        stored, key = found
        return key if hmac.compare_digest(stored, digest) else None

    def authenticate(self, headers: Mapping[str, str]) -> ApiKey:
        """The key presented in ``headers``; ``Unauthorized`` when missing or unknown."""
        if self._disabled:
            return AuthDisabled
        key = self.lookup(_presented_secret(headers))
        if key is None:
            raise Unauthorized("unknown API key")
        return key


def _parse_hash(stored: str) -> bytes:
    if not stored.startswith(_HASH_PREFIX):
        raise ValueError(f"a stored hash must look like '{_HASH_PREFIX}<64 hex digits>'")
    hexpart = stored[len(_HASH_PREFIX) :]
    try:
        digest = bytes.fromhex(hexpart)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise ValueError(f"a stored hash must look like '{_HASH_PREFIX}<64 hex digits>'")
    return digest


_ENTRY_FIELDS: Final = frozenset({"id", "hash", "secret", "roles", "rate_per_s", "burst"})


def _parse_entry(entry: object, source: str, index: int, pepper: str) -> tuple[str, ApiKey]:
    where = f"{source}: key #{index}"
    if not isinstance(entry, Mapping):
        raise AuthConfigError(f"{where}: expected a mapping, got {type(entry).__name__}")
    key_id = entry.get("id")
    if not isinstance(key_id, str) or not key_id:
        raise AuthConfigError(f"{where}: 'id' must be a non-empty string")
    where = f"{source}: key {key_id!r}"
    unknown = set(entry) - _ENTRY_FIELDS
    if unknown:
        raise AuthConfigError(f"{where}: unknown fields {sorted(map(str, unknown))}")
    has_hash, has_secret = "hash" in entry, "secret" in entry
    if has_hash == has_secret:
        raise AuthConfigError(f"{where}: give exactly one of 'hash' or 'secret'")
    if has_secret:
        secret = entry["secret"]
        if not isinstance(secret, str) or not secret:
            raise AuthConfigError(f"{where}: 'secret' must be a non-empty string")
        stored = hash_key(secret, pepper)
    else:
        stored = entry["hash"]
        if not isinstance(stored, str):
            raise AuthConfigError(f"{where}: 'hash' must be a string")
        try:
            _parse_hash(stored)
        except ValueError as exc:
            raise AuthConfigError(f"{where}: {exc}") from None
    roles = entry.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise AuthConfigError(f"{where}: 'roles' must be a list of strings")
    rate = entry.get("rate_per_s")
    burst = entry.get("burst")
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise AuthConfigError(f"{where}: 'rate_per_s' must be a number")
    if isinstance(burst, bool) or not isinstance(burst, int):
        raise AuthConfigError(f"{where}: 'burst' must be an integer")
    try:
        key = ApiKey(key_id, frozenset(roles), float(rate), burst)
    except ValueError as exc:
        raise AuthConfigError(f"{where}: {exc}") from None
    return stored, key


# --- rate limiting ----------------------------------------------------------------------------
#
# Why not the `limits` package: its 5.x strategies (FixedWindow, MovingWindow,
# SlidingWindowCounter) all count hits in windows. None is a token bucket: after a burst of N
# spent at once, a window limiter of "N per N/rate seconds" refuses everything until the
# window has passed, where a bucket lets one request through every 1/rate seconds. We want
# burst *and* a steady refill, so this is a tiny token bucket (in process memory, as
# `limits.MemoryStorage` would have been) with an injectable clock for tests.


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of one ``RateLimiter.check``; seconds are floats, headers round them up."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """A token bucket per key id: ``burst`` tokens, refilled at ``rate_per_s``."""

    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def check(self, key: ApiKey) -> RateDecision:
        """Spend one token of ``key``'s bucket if it has one, and say how things stand."""
        if math.isinf(key.rate_per_s):
            return RateDecision(True, key.burst, key.burst, 0.0, 0.0)
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key.key_id)
            if bucket is None:
                bucket = self._buckets[key.key_id] = _Bucket(float(key.burst), now)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(key.burst), bucket.tokens + elapsed * key.rate_per_s)
            bucket.updated = now
            allowed = bucket.tokens >= 1.0
            if allowed:
                bucket.tokens -= 1.0
            tokens = bucket.tokens
        retry_after = 0.0 if allowed else (1.0 - tokens) / key.rate_per_s
        return RateDecision(
            allowed=allowed,
            limit=key.burst,
            remaining=int(tokens),
            reset_s=(key.burst - tokens) / key.rate_per_s,
            retry_after_s=retry_after,
        )

    def enforce(self, key: ApiKey) -> RateDecision:
        """``check``, raising ``TooManyRequests`` (with the decision) when refused."""
        decision = self.check(key)
        if not decision.allowed:
            raise TooManyRequests(
                f"rate limit exceeded for API key {key.key_id!r}; "
                f"retry in {math.ceil(decision.retry_after_s)} s",
                decision,
            )
        return decision

    @staticmethod
    def headers(decision: RateDecision) -> dict[str, str]:
        """``RateLimit-*`` headers for any answer, plus ``Retry-After`` on a refusal."""
        out = {
            "RateLimit-Limit": str(decision.limit),
            "RateLimit-Remaining": str(decision.remaining),
            "RateLimit-Reset": str(math.ceil(decision.reset_s)),
        }
        if not decision.allowed:
            out["Retry-After"] = str(max(1, math.ceil(decision.retry_after_s)))
        return out


def main(argv: list[str] | None = None) -> int:
    """``python -m orchard_gateway.auth [SECRET]``: print the stored hash of a key.

    Without SECRET, mints a new random key and prints it once with its hash. The pepper comes
    from ``ORCHARD_GATEWAY_API_KEY_PEPPER`` (empty if unset).
    """
    import secrets
    import sys

    args = sys.argv[1:] if argv is None else argv
    pepper = os.environ.get(API_KEY_PEPPER_ENV, "")
    if args:
        print(hash_key(args[0], pepper))
    else:
        secret = secrets.token_urlsafe(32)
        print(f"secret: {secret}\nhash:   {hash_key(secret, pepper)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
