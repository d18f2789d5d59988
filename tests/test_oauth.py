"""OAuth 2.0 against a local token server: assertion, caching, expiry, refusal, 429."""

from __future__ import annotations

import email.utils
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from segment_client import (
    APIError,
    Client,
    ConfigurationError,
    DeliveryError,
    MissingDependencyError,
    OAuthError,
    OAuthSettings,
    _consumer,
)
from segment_client._transports._auth import OAuth, TokenManager
from tests._support.localhttp import LocalServer, Request, Response, ScriptedAPI


def make_key() -> tuple[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, key.public_key()


@pytest.fixture(scope="module")
def rsa_key() -> tuple[str, Any]:
    return make_key()


class TokenServer:
    """Segment's token endpoint, locally: checks the grant and the signed assertion."""

    def __init__(self, public_key: Any) -> None:
        self.public_key = public_key
        self.script: list[Response] = []
        self.expires_in = 3600
        self.issued: list[str] = []
        self.claims: list[dict[str, Any]] = []
        self.headers: list[dict[str, Any]] = []
        self.audience = ""

    def __call__(self, request: Request) -> Response:
        if request.path != "/token":
            return Response(404, b"not found")
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        assertion = form["client_assertion"]
        self.headers.append(jwt.get_unverified_header(assertion))
        if self.script:
            return self.script.pop(0)
        # Verifies the RS256 signature, the audience and exp (with room for clock tests).
        self.claims.append(
            jwt.decode(
                assertion, self.public_key, algorithms=["RS256"], audience=self.audience,
                leeway=200,
            )
        )
        assert form["grant_type"] == "client_credentials"
        assert form["client_assertion_type"] == (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        )
        assert form["scope"] == "tracking_api:write"
        token = f"tok-{len(self.issued) + 1}"
        self.issued.append(token)
        body = f'{{"access_token": "{token}", "expires_in": {self.expires_in}}}'
        return Response(200, body.encode(), {"Content-Type": "application/json"})


@pytest.fixture
def token_server(rsa_key: tuple[str, Any]) -> Iterator[tuple[TokenServer, LocalServer]]:
    handler = TokenServer(rsa_key[1])
    with LocalServer(handler) as server:
        handler.audience = server.url
        yield handler, server


def bearer_only(valid: set[str] | None = None) -> Any:
    """An authorize hook: Bearer tokens only; when `valid` is given, only those."""

    def check(request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or (valid is not None and auth[7:] not in valid):
            return Response(401, b'{"error": "unauthorized"}')
        return None

    return check


def settings(pem: str, server: LocalServer) -> OAuthSettings:
    return OAuthSettings("client-1", "key-1", pem, auth_server=server.url)


def test_token_fetched_once_cached_and_sent_as_bearer(
    rsa_key, token_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three requests of at most 3 (a backlog would otherwise go out in fewer, larger ones).
    monkeypatch.setattr(_consumer, "BACKLOG_BATCH_CAP", 3)
    tokens, auth = token_server
    collector = ScriptedAPI(authorize=bearer_only())
    with LocalServer(collector) as api:
        client = Client("wk-secret", host=api.url, flush_at=3, oauth=settings(rsa_key[0], auth))
        for i in range(7):
            client.track("u", f"E{i}")
        assert client.close_and_flush(10)
    assert len(collector.messages) == 7
    batch_requests = [r for r in api.requests if r.path == "/v1/batch"]
    assert len(batch_requests) == 3
    assert {r.headers["authorization"] for r in batch_requests} == {"Bearer tok-1"}
    assert all(r.json()["writeKey"] == "wk-secret" for r in batch_requests)
    assert tokens.issued == ["tok-1"]
    claims, header = tokens.claims[0], tokens.headers[0]
    assert header["kid"] == "key-1" and header["alg"] == "RS256"
    assert claims["iss"] == claims["sub"] == "client-1"
    assert claims["aud"] == auth.url
    assert claims["exp"] - claims["iat"] == 60 and claims["jti"]


def test_token_refreshed_at_half_its_lifetime(rsa_key, token_server) -> None:
    tokens, auth = token_server
    tokens.expires_in = 10
    now = [time.time()]
    manager = TokenManager(settings(rsa_key[0], auth), auth_server=auth.url, clock=lambda: now[0])
    import requests

    with requests.Session() as session:
        assert manager.token(session.post) == "tok-1"
        now[0] += 4.9
        assert manager.token(session.post) == "tok-1"
        now[0] += 0.2  # past half of the 10 s lifetime
        assert manager.token(session.post) == "tok-2"
    assert manager.fetches == 2


def test_failed_refresh_keeps_a_still_valid_token_until_near_expiry(rsa_key, token_server) -> None:
    tokens, auth = token_server
    tokens.expires_in = 100
    start = time.time()
    now = [start]
    manager = TokenManager(settings(rsa_key[0], auth), auth_server=auth.url, clock=lambda: now[0])
    import requests

    with requests.Session() as session:
        assert manager.token(session.post) == "tok-1"
        tokens.script = [Response(503, b"busy"), Response(503, b"busy")]
        now[0] = start + 60  # refresh due, refresh fails, the token has 40 s left
        assert manager.token(session.post) == "tok-1"
        now[0] = start + 96  # within the expiry margin: no longer usable
        with pytest.raises(OAuthError) as info:
            manager.token(session.post)
    assert info.value.status == 503 and info.value.retryable
    assert manager.fetches == 3


def test_token_endpoint_429_is_honoured_without_calling_it_early(rsa_key, token_server) -> None:
    tokens, auth = token_server
    start = time.time()
    now = [start]
    manager = TokenManager(settings(rsa_key[0], auth), auth_server=auth.url, clock=lambda: now[0])
    tokens.script = [Response(429, b"slow down", {"Retry-After": "30"})]
    import requests

    with requests.Session() as session:
        with pytest.raises(OAuthError) as first:
            manager.token(session.post)
        assert first.value.status == 429 and first.value.retry_after == 30
        now[0] = start + 10
        with pytest.raises(OAuthError) as second:
            manager.token(session.post)
        assert second.value.retry_after == pytest.approx(20)
        assert manager.fetches == 1  # no request before Retry-After passed
        now[0] = start + 30.5
        assert manager.token(session.post) == "tok-1"
    assert manager.fetches == 2


def test_client_waits_for_token_429_then_delivers(rsa_key, token_server) -> None:
    tokens, auth = token_server
    tokens.script = [Response(429, b"", {"Retry-After": "1"})]
    collector = ScriptedAPI(authorize=bearer_only())
    with LocalServer(collector) as api:
        client = Client("wk", host=api.url, oauth=settings(rsa_key[0], auth))
        client.track("u", "E")
        assert client.flush(15)
        stats = client.stats()
        client.close_and_flush(5)
    assert len(collector.messages) == 1
    assert stats.delivered == 1 and stats.failed == 0 and stats.retried == 1
    assert tokens.issued == ["tok-1"]


def test_refused_token_fails_the_batch_and_reports_it(rsa_key, token_server) -> None:
    tokens, auth = token_server
    tokens.script = [Response(401, b'{"error": "invalid_client"}')]
    reported: list[tuple[DeliveryError, int]] = []
    collector = ScriptedAPI()
    with LocalServer(collector) as api:
        client = Client(
            "wk", host=api.url, oauth=settings(rsa_key[0], auth),
            on_error=lambda e, m: reported.append((e, len(m))),
        )
        client.track("u", "A")
        client.track("u", "B")
        assert client.flush(10) is False
        stats = client.stats()
        client.close_and_flush(5)
    assert api.requests == []  # nothing was sent without a token
    assert stats.failed == 2 and stats.delivered == 0
    [(error, count)] = reported
    assert count == 2 and isinstance(error, OAuthError) and error.status == 401
    assert "OAuth token request failed" in str(error) and "invalid_client" in str(error)


def test_api_401_discards_the_token_and_retries_once_with_a_new_one(rsa_key, token_server):
    tokens, auth = token_server
    collector = ScriptedAPI(authorize=bearer_only(valid={"tok-2"}))  # tok-1 was revoked
    with LocalServer(collector) as api:
        client = Client("wk", host=api.url, oauth=settings(rsa_key[0], auth))
        for i in range(4):
            client.track("u", f"E{i}")
        assert client.flush(10)
        stats = client.stats()
        client.close_and_flush(5)
    assert len(collector.messages) == 4 and stats.delivered == 4
    assert tokens.issued == ["tok-1", "tok-2"]
    assert [r.headers["authorization"] for r in api.requests] == ["Bearer tok-1", "Bearer tok-2"]


def test_api_403_twice_fails_the_batch_after_one_refresh(rsa_key, token_server) -> None:
    tokens, auth = token_server
    collector = ScriptedAPI(authorize=lambda r: Response(403, b'{"error": "forbidden"}'))
    reported: list[tuple[DeliveryError, int]] = []
    with LocalServer(collector) as api:
        client = Client(
            "wk", host=api.url, oauth=settings(rsa_key[0], auth),
            on_error=lambda e, m: reported.append((e, len(m))),
        )
        client.track("u", "A")
        assert client.flush(10) is False
        client.close_and_flush(5)
    assert len(api.requests) == 2 and tokens.issued == ["tok-1", "tok-2"]
    [(error, count)] = reported
    assert isinstance(error, APIError) and error.status == 403 and count == 1


def test_clock_skew_is_corrected_from_the_date_header(rsa_key, token_server) -> None:
    tokens, auth = token_server
    real_now = time.time()
    date = email.utils.formatdate(real_now, usegmt=True)
    tokens.script = [Response(400, b'{"error": "Token is expired"}', {"Date": date})]
    # Our clock is 1000 s behind the server's: the first assertion looks expired to it.
    manager = TokenManager(
        settings(rsa_key[0], auth), auth_server=auth.url, clock=lambda: time.time() - 1000
    )
    import requests

    with requests.Session() as session:
        assert manager.token(session.post) == "tok-1"
    assert manager.fetches == 2
    assert tokens.claims[-1]["iat"] == pytest.approx(real_now - 5, abs=3)


def test_region_chooses_the_auth_server(rsa_key) -> None:
    pem = rsa_key[0]
    eu = Client("wk", region="eu", oauth=OAuthSettings("c", "k", pem))
    us = Client("wk", oauth=OAuthSettings("c", "k", pem))
    try:
        eu_auth = eu._consumer.sender.transport.auth  # type: ignore[attr-defined]
        us_auth = us._consumer.sender.transport.auth  # type: ignore[attr-defined]
        assert isinstance(eu_auth, OAuth) and isinstance(us_auth, OAuth)
        assert eu_auth.tokens.url == "https://oauth2.eu1.segmentapis.com/token"
        assert us_auth.tokens.url == "https://oauth2.segment.io/token"
    finally:
        eu.close_and_flush(1)
        us.close_and_flush(1)


def test_settings_validation_never_echoes_the_key(rsa_key) -> None:
    with pytest.raises(ConfigurationError, match="client_id"):
        OAuthSettings("", "k", rsa_key[0])
    secret_text = (
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----"
    )
    with pytest.raises(ConfigurationError) as info:
        Client("wk", oauth=OAuthSettings("c", "k", secret_text))
    assert "c2VjcmV0" not in str(info.value) and "PEM" in str(info.value)
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigurationError, match="RSA"):
        Client("wk", oauth=OAuthSettings("c", "k", ec_pem))
    with pytest.raises(ConfigurationError, match="oauth must be an OAuthSettings"):
        Client("wk", oauth={"client_id": "c"})  # type: ignore[arg-type]
    settings_repr = repr(OAuthSettings("c", "k", rsa_key[0]))
    assert "PRIVATE" not in settings_repr and "private_key=***" in settings_repr


def test_missing_extra_names_it(rsa_key, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jwt", None)
    with pytest.raises(MissingDependencyError, match=r"segment-client\[oauth\]"):
        Client("wk", oauth=OAuthSettings("c", "k", rsa_key[0]))
