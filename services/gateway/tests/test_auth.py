"""API keys, roles and rate limits (orchard_gateway.auth), without a running gateway."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from orchard_core.errors import OrchardError, Unauthorized
from orchard_gateway.auth import (
    ALL_ROLES,
    API_KEY_PEPPER_ENV,
    API_KEYS_ENV,
    UNAUTHORIZED_HEADERS,
    ApiKey,
    AuthConfigError,
    AuthDisabled,
    Forbidden,
    KeyStore,
    RateDecision,
    RateLimiter,
    TooManyRequests,
    hash_key,
    main,
    require,
)

PEPPER = "test-pepper"
SECRET_A = "sk-alpha-0123456789abcdefghijklmnopqrstuvwxyz"
SECRET_B = "sk-bravo-9876543210zyxwvutsrqponmlkjihgfedcba"


def _key(key_id: str = "a", roles: frozenset[str] = frozenset({"predict"}), **kw: float) -> ApiKey:
    return ApiKey(
        key_id, roles, rate_per_s=float(kw.get("rate_per_s", 1.0)), burst=int(kw.get("burst", 3))
    )


@pytest.fixture
def store() -> KeyStore:
    return KeyStore(
        [
            (hash_key(SECRET_A, PEPPER), _key("alpha")),
            (hash_key(SECRET_B, PEPPER), _key("bravo", frozenset({"predict", "admin"}))),
        ],
        pepper=PEPPER,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- hashing and lookup ---------------------------------------------------------------------


def test_hash_key_is_keyed_deterministic_and_hides_the_secret() -> None:
    h = hash_key(SECRET_A, PEPPER)
    assert h.startswith("hmac-sha256:")
    assert len(h) == len("hmac-sha256:") + 64
    assert h == hash_key(SECRET_A, PEPPER)
    assert h != hash_key(SECRET_A, "other-pepper")
    assert h != hash_key(SECRET_B, PEPPER)
    assert SECRET_A not in h
    with pytest.raises(ValueError, match="empty"):
        hash_key("")


def test_lookup_finds_the_key_only_with_the_right_secret_and_pepper(store: KeyStore) -> None:
    assert store.lookup(SECRET_A) == _key("alpha")
    assert store.lookup(SECRET_B) is not None
    assert store.lookup(SECRET_A + "x") is None
    assert store.lookup("") is None
    unpeppered = KeyStore([(hash_key(SECRET_A), _key("alpha"))])
    assert unpeppered.lookup(SECRET_A) is not None
    assert KeyStore([(hash_key(SECRET_A), _key("alpha"))], pepper=PEPPER).lookup(SECRET_A) is None


def test_store_refuses_duplicate_ids_and_hashes() -> None:
    with pytest.raises(ValueError, match="duplicate API key id 'a'"):
        KeyStore([(hash_key(SECRET_A), _key("a")), (hash_key(SECRET_B), _key("a"))])
    with pytest.raises(ValueError, match="same hash"):
        KeyStore([(hash_key(SECRET_A), _key("a")), (hash_key(SECRET_A), _key("b"))])


def test_api_key_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        _key(roles=frozenset({"root"}))
    with pytest.raises(ValueError, match="rate_per_s"):
        _key(rate_per_s=0)
    with pytest.raises(ValueError, match="burst"):
        _key(burst=0)
    with pytest.raises(ValueError, match="key_id"):
        _key("")


# --- headers, 401 and 403 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {SECRET_A}"},
        {"authorization": f"bearer   {SECRET_A}  "},
        {"X-API-Key": SECRET_A},
        {"x-api-key": SECRET_A},
        {"Authorization": f"Bearer {SECRET_A}", "X-API-Key": SECRET_A},
    ],
)
def test_authenticate_accepts_both_header_forms(store: KeyStore, headers: dict[str, str]) -> None:
    assert store.authenticate(headers).key_id == "alpha"


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ({}, "missing API key"),
        ({"Authorization": f"Basic {SECRET_A}"}, "unsupported Authorization scheme"),
        ({"Authorization": "Bearer "}, "empty bearer token"),
        ({"X-API-Key": "  "}, "empty X-API-Key"),
        ({"Authorization": f"Bearer {SECRET_A}", "X-API-Key": SECRET_B}, "different keys"),
        ({"Authorization": "Bearer sk-wrong"}, "unknown API key"),
        ({"X-API-Key": "sk-wrong"}, "unknown API key"),
    ],
)
def test_authenticate_raises_unauthorized(
    store: KeyStore, headers: dict[str, str], match: str
) -> None:
    with pytest.raises(Unauthorized, match=match) as info:
        store.authenticate(headers)
    assert SECRET_A not in str(info.value)
    assert SECRET_B not in str(info.value)
    assert "sk-wrong" not in str(info.value)


def test_unauthorized_challenge_header_is_bearer() -> None:
    assert UNAUTHORIZED_HEADERS["WWW-Authenticate"].startswith("Bearer ")


def test_401_for_unknown_and_403_for_missing_role(store: KeyStore) -> None:
    with pytest.raises(Unauthorized):
        store.authenticate({"X-API-Key": "nope"})
    alpha = store.authenticate({"X-API-Key": SECRET_A})
    require(alpha, "predict")
    with pytest.raises(Forbidden, match="'alpha' lacks the 'admin' role") as info:
        require(alpha, "admin")
    assert SECRET_A not in str(info.value)
    assert isinstance(info.value, OrchardError)
    assert not isinstance(info.value, Unauthorized)
    bravo = store.authenticate({"X-API-Key": SECRET_B})
    require(bravo, "admin")
    with pytest.raises(ValueError, match="unknown role"):
        require(bravo, "superuser")


# --- disabled mode --------------------------------------------------------------------------


def test_disabled_mode_warns_and_lets_everyone_in(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="orchard.gateway.auth"):
        store = KeyStore.disabled()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "AUTHENTICATION IS DISABLED" in warnings[0].getMessage()
    assert store.is_disabled
    assert store.authenticate({}) is AuthDisabled
    assert store.authenticate({"Authorization": "Basic whatever"}) is AuthDisabled
    assert AuthDisabled.roles == ALL_ROLES
    for role in ALL_ROLES:
        require(AuthDisabled, role)
    assert repr(store) == "KeyStore(disabled)"
    limiter = RateLimiter()
    assert all(limiter.check(AuthDisabled).allowed for _ in range(100))


def test_enabled_store_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="orchard.gateway.auth"):
        KeyStore([(hash_key(SECRET_A), _key())])
    assert caplog.records == []


def test_disabled_store_takes_no_keys() -> None:
    with pytest.raises(ValueError, match="no keys"):
        KeyStore([(hash_key(SECRET_A), _key())], disabled=True)


# --- secrets never leak ---------------------------------------------------------------------


def test_secrets_never_in_reprs_messages_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "keys.yaml"
    path.write_text(
        "keys:\n"
        f"  - {{id: alpha, secret: {SECRET_A}, roles: [predict], rate_per_s: 1, burst: 1}}\n"
        f"  - {{id: bravo, secret: {SECRET_B}, roles: [admin], rate_per_s: 1, burst: 1}}\n"
    )
    store = KeyStore.from_file(path, pepper=PEPPER)
    alpha = store.authenticate({"Authorization": f"Bearer {SECRET_A}"})
    texts = [repr(store), str(store), repr(alpha), str(alpha)]
    for bad in ({"X-API-Key": SECRET_A + "x"}, {"Authorization": f"Token {SECRET_A}"}):
        with pytest.raises(Unauthorized) as u:
            store.authenticate(bad)
        texts.append(str(u.value))
    with pytest.raises(Forbidden) as f:
        require(alpha, "admin")
    texts.append(str(f.value))
    limiter = RateLimiter(clock=Clock())
    limiter.check(alpha)
    with pytest.raises(TooManyRequests) as t:
        limiter.enforce(alpha)
    texts += [str(t.value), repr(limiter)]
    # A malformed entry right after a secret: the error must not echo it.
    path.write_text(f"- {{id: c, secret: {SECRET_A}, roles: predict, rate_per_s: 1, burst: 1}}\n")
    with pytest.raises(AuthConfigError) as c:
        KeyStore.from_file(path)
    texts.append(str(c.value))
    path.write_text(f"- {{id: c, secret: {SECRET_A}, roles: [predict]\n")  # broken YAML
    with pytest.raises(AuthConfigError) as y:
        KeyStore.from_file(path)
    texts.append(str(y.value))
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert SECRET_A not in text
        assert SECRET_B not in text
        assert hash_key(SECRET_A, PEPPER) not in text
    assert "alpha" in repr(alpha)  # the id is fine to show
    assert repr(store) == "KeyStore(2 keys)"


# --- loading from files and the environment ------------------------------------------------


def _entry(**over: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "id": "alpha",
        "hash": hash_key(SECRET_A, PEPPER),
        "roles": ["predict"],
        "rate_per_s": 5,
        "burst": 10,
    }
    entry.update(over)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_from_file_reads_yaml_and_json(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"keys.{suffix}"
    entries = [_entry(), _entry(id="bravo", hash=None, secret=SECRET_B, roles=["admin"])]
    data: object = {"keys": entries} if suffix == "yaml" else entries
    path.write_text(json.dumps(data))
    store = KeyStore.from_file(path, pepper=PEPPER)
    assert len(store) == 2
    assert store.lookup(SECRET_A) == ApiKey("alpha", frozenset({"predict"}), 5.0, 10)
    bravo = store.lookup(SECRET_B)
    assert bravo is not None
    assert bravo.roles == frozenset({"admin"})


def test_from_file_yaml_block_style(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(
        "keys:\n"
        "  - id: alpha\n"
        f"    hash: {hash_key(SECRET_A)}\n"
        "    roles: [predict, admin]\n"
        "    rate_per_s: 0.5\n"
        "    burst: 2\n"
    )
    key = KeyStore.from_file(path).lookup(SECRET_A)
    assert key == ApiKey("alpha", ALL_ROLES, 0.5, 2)


def test_from_env_reads_json_and_pepper() -> None:
    env = {API_KEYS_ENV: json.dumps([_entry()]), API_KEY_PEPPER_ENV: PEPPER}
    store = KeyStore.from_env(env)
    assert store.lookup(SECRET_A) is not None
    # The wrong pepper makes the stored hash useless.
    assert KeyStore.from_env({API_KEYS_ENV: env[API_KEYS_ENV]}).lookup(SECRET_A) is None


def test_from_env_reads_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEYS_ENV, json.dumps([_entry(hash=None, secret=SECRET_A)]))
    monkeypatch.delenv(API_KEY_PEPPER_ENV, raising=False)
    assert KeyStore.from_env().lookup(SECRET_A) is not None


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({}, r"\$ORCHARD_GATEWAY_API_KEYS is not set"),
        ({API_KEYS_ENV: "  "}, "is not set"),
        ({API_KEYS_ENV: "[{"}, r"\$ORCHARD_GATEWAY_API_KEYS: not valid JSON at line 1"),
        ({API_KEYS_ENV: '"x"'}, r"\$ORCHARD_GATEWAY_API_KEYS: expected a list"),
    ],
)
def test_from_env_errors_name_the_variable(env: dict[str, str], match: str) -> None:
    with pytest.raises(AuthConfigError, match=match):
        KeyStore.from_env(env)


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ({"nope": []}, "expected a list"),
        (["x"], "key #0: expected a mapping"),
        ([{"hash": "h"}], "key #0: 'id' must be a non-empty string"),
        ([_entry(extra=1)], r"key 'alpha': unknown fields \['extra'\]"),
        ([_entry(secret=SECRET_A)], "exactly one of 'hash' or 'secret'"),
        ([_entry(hash=None)], "exactly one of 'hash' or 'secret'"),
        ([_entry(hash=None, secret="")], "'secret' must be a non-empty string"),
        ([_entry(hash=12)], "'hash' must be a string"),
        ([_entry(hash="sha256:abc")], "must look like 'hmac-sha256:<64 hex digits>'"),
        ([_entry(hash="hmac-sha256:zz")], "must look like"),
        ([_entry(roles="predict")], "'roles' must be a list of strings"),
        ([_entry(roles=["root"])], "unknown roles"),
        ([_entry(rate_per_s="fast")], "'rate_per_s' must be a number"),
        ([_entry(rate_per_s=True)], "'rate_per_s' must be a number"),
        ([_entry(rate_per_s=0)], "rate_per_s must be > 0"),
        ([_entry(burst=1.5)], "'burst' must be an integer"),
        ([_entry(burst=0)], "burst must be >= 1"),
        ([_entry(), _entry(hash=hash_key(SECRET_B))], "duplicate API key id 'alpha'"),
    ],
)
def test_malformed_config_names_the_source(tmp_path: Path, entries: object, match: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(AuthConfigError, match=match) as info:
        KeyStore.from_file(path)
    assert str(info.value).startswith(f"{path}: ")


def test_unreadable_and_unparsable_files_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(AuthConfigError, match=f"{missing}: cannot read"):
        KeyStore.from_file(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("keys: [\n  - {id: a\n")
    with pytest.raises(AuthConfigError, match=f"{bad}: not valid YAML/JSON at line"):
        KeyStore.from_file(bad)


def test_cli_hashes_and_mints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEY_PEPPER_ENV, PEPPER)
    assert main([SECRET_A]) == 0
    assert capsys.readouterr().out.strip() == hash_key(SECRET_A, PEPPER)
    assert main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    secret = lines[0].removeprefix("secret: ")
    assert lines[1].removeprefix("hash:").strip() == hash_key(secret, PEPPER)
    assert len(secret) >= 40


# --- rate limiting --------------------------------------------------------------------------


def test_burst_then_refuse_then_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    key = _key(rate_per_s=2.0, burst=3)
    decisions = [limiter.check(key) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    refused = limiter.check(key)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after_s == pytest.approx(0.5)
    assert refused.reset_s == pytest.approx(1.5)
    clock.now += 0.25  # half a token: still refused, shorter wait
    half = limiter.check(key)
    assert not half.allowed
    assert half.retry_after_s == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.check(key).allowed
    assert not limiter.check(key).allowed
    clock.now += 100  # refills to the burst, never beyond
    assert [limiter.check(key).allowed for _ in range(4)] == [True, True, True, False]


def test_clock_going_backwards_does_not_mint_or_burn_tokens() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    key = _key(rate_per_s=1.0, burst=1)
    assert limiter.check(key).allowed
    clock.now -= 50
    assert not limiter.check(key).allowed
    clock.now += 1
    assert limiter.check(key).allowed


def test_keys_are_limited_separately() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    a, b = _key("a", burst=1), _key("b", burst=2)
    assert limiter.check(a).allowed
    assert not limiter.check(a).allowed
    assert limiter.check(b).allowed
    assert limiter.check(b).allowed
    assert not limiter.check(b).allowed


def test_enforce_raises_too_many_requests_with_the_decision() -> None:
    limiter = RateLimiter(clock=Clock())
    key = _key("alpha", rate_per_s=0.1, burst=1)
    assert limiter.enforce(key).allowed
    with pytest.raises(TooManyRequests, match="'alpha'; retry in 10 s") as info:
        limiter.enforce(key)
    assert isinstance(info.value, OrchardError)
    assert info.value.decision.retry_after_s == pytest.approx(10.0)


def test_headers_when_allowed_and_refused() -> None:
    allowed = RateDecision(True, limit=10, remaining=7, reset_s=1.2, retry_after_s=0.0)
    assert RateLimiter.headers(allowed) == {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "7",
        "RateLimit-Reset": "2",
    }
    refused = RateDecision(False, limit=10, remaining=0, reset_s=4.5, retry_after_s=0.3)
    assert RateLimiter.headers(refused) == {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "5",
        "Retry-After": "1",
    }


def test_headers_from_a_real_refusal() -> None:
    limiter = RateLimiter(clock=Clock())
    key = _key(rate_per_s=0.5, burst=2)
    limiter.check(key)
    limiter.check(key)
    headers = RateLimiter.headers(limiter.check(key))
    assert headers["Retry-After"] == "2"
    assert headers["RateLimit-Reset"] == "4"
    assert headers["RateLimit-Remaining"] == "0"
    assert headers["RateLimit-Limit"] == "2"


def test_a_refusal_answers_429_with_retry_after_through_the_error_handlers() -> None:
    from fastapi import APIRouter
    from fastapi.testclient import TestClient

    from orchard_core import ServiceSettings, create_app

    limiter = RateLimiter()
    key = ApiKey("team-a", frozenset({"predict"}), rate_per_s=0.5, burst=1)
    router = APIRouter()

    @router.get("/limited")
    async def limited() -> dict[str, bool]:
        limiter.enforce(key)
        return {"ok": True}

    client = TestClient(create_app(ServiceSettings(), title="t", routers=[router]))
    assert client.get("/limited").status_code == 200
    refused = client.get("/limited")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"
    assert "team-a" in refused.json()["error"]
