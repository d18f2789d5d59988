"""OAuth 2.0 for the Tracking API, the way Segment's own libraries do it.

A JWT client assertion (RS256, header `kid`) is exchanged at `{auth_server}/token` for a
bearer token (client-credentials grant). The token is cached and refreshed at half its
lifetime; a 401/403 from the Tracking API discards it and the request is sent once more
with a fresh one. The token endpoint's 429 is honoured: no request is made to it before
its `Retry-After` has passed, and the consumer waits that long before the next attempt.

Tokens are fetched lazily, by the thread that sends: the consumer thread (or the caller's
thread in `sync_mode`). Needs the `oauth` extra: `pip install 'segment-client[oauth]'`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from ._exceptions import APIError, ConfigurationError, MissingDependencyError, TransportError
from ._retry import parse_http_date, parse_retry_after
from ._transport import USER_AGENT, HTTPTransport, _redact

__all__ = ["DEFAULT_SCOPE", "OAuthError", "OAuthSettings", "OAuthTransport", "TokenManager"]

logger = logging.getLogger("segment_client")

DEFAULT_SCOPE = "tracking_api:write"
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The assertion is valid for one minute, backdated 5 s against small clock differences
# (Segment's libraries use the same window).
_ASSERTION_BACKDATE_S = 5
_ASSERTION_LIFETIME_S = 55
# A 429 from the token endpoint without Retry-After waits this long (as analytics-node).
_DEFAULT_TOKEN_RETRY_AFTER_S = 5.0
# A cached token is never used within this many seconds of its expiry.
_EXPIRY_MARGIN_S = 5.0
_CLOCK_ERRORS = ("token is expired", "token used before issued")

Post = Callable[..., requests.Response]


class OAuthError(APIError):
    """The OAuth token endpoint refused or failed a token request.

    An `APIError` (same `status`, `retry_after`, `retryable`), so the consumer retries
    429 and 5xx and reports a refusal (400/401/403/415) as a failed batch.
    """

    def __init__(self, status: int, body: str = "", retry_after: float | None = None) -> None:
        super().__init__(status, body, retry_after)
        self.args = (f"OAuth token request failed: {self.args[0]}",)


@dataclass(frozen=True, repr=False)
class OAuthSettings:
    """Credentials of a Segment OAuth application (Workspace settings > Access management).

    Args:
        client_id: the OAuth app's client id.
        key_id: the id of the public key registered with the app (JWT header `kid`).
        private_key: the matching RSA private key, PEM text or bytes (PKCS#8 or PKCS#1).
        scope: the scope requested; Segment's Tracking API needs `tracking_api:write`.
        auth_server: the authorization server; default: the one of the client's region
            (`https://oauth2.segment.io` or `https://oauth2.eu1.segmentapis.com`).
        timeout: seconds per token request.

    Immutable; its `repr()` never shows the private key.
    """

    client_id: str
    key_id: str
    private_key: str | bytes
    scope: str = DEFAULT_SCOPE
    auth_server: str | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in ("client_id", "key_id", "scope"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(f"OAuthSettings.{name} must be a non-empty string")
        key = self.private_key
        if not isinstance(key, str | bytes) or b"PRIVATE KEY" not in (
            key.encode() if isinstance(key, str) else key
        ):
            # Never echo the value: it may be a (malformed) private key.
            raise ConfigurationError(
                "OAuthSettings.private_key must be a PEM-encoded RSA private key "
                "('-----BEGIN PRIVATE KEY-----...')"
            )
        if self.auth_server is not None:
            server = self.auth_server
            if not isinstance(server, str) or not server.startswith(("https://", "http://")):
                raise ConfigurationError(
                    f"OAuthSettings.auth_server must be an http(s) URL, got {server!r}"
                )
            object.__setattr__(self, "auth_server", server.rstrip("/"))
        timeout = self.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigurationError(f"OAuthSettings.timeout must be > 0, got {timeout!r}")

    def __repr__(self) -> str:
        return (
            f"OAuthSettings(client_id={self.client_id!r}, key_id={self.key_id!r}, "
            f"scope={self.scope!r}, auth_server={self.auth_server!r}, private_key=***)"
        )


def _require_jwt() -> Any:
    try:
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "OAuth needs PyJWT and cryptography: pip install 'segment-client[oauth]'"
        ) from exc
    return jwt


def _load_key(pem: str | bytes) -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    except (ValueError, TypeError):
        # The library's message is safe, but say what is expected, never what was given.
        raise ConfigurationError(
            "OAuthSettings.private_key could not be loaded: expected an unencrypted RSA "
            "private key in PEM format (PKCS#8 or PKCS#1)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError(
            f"OAuthSettings.private_key must be an RSA key (RS256), got {type(key).__name__}"
        )
    return key


class TokenManager:
    """Caches one access token and fetches a new one when needed.

    Thread-safe: one fetch at a time; other senders wait for it (they are consumer
    threads, or callers that chose `sync_mode`). `token()` blocks for at most one
    token request (`settings.timeout` per phase), or two after a clock-skew correction.
    """

    def __init__(
        self,
        settings: OAuthSettings,
        *,
        auth_server: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._jwt = _require_jwt()
        self._key = _load_key(settings.private_key)
        self._settings = settings
        self.auth_server = auth_server.rstrip("/")
        self.url = self.auth_server + "/token"
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0
        self._not_before = 0.0  # no request before this time (the endpoint's 429)
        self._skew = 0.0  # server time minus ours, learnt from the Date header
        self._last_assertion = ""
        self.fetches = 0  # token requests made (for tests and diagnostics)

    def __repr__(self) -> str:
        return f"TokenManager(url={self.url!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Credentials that must never be shown: the token and the last assertion."""
        return tuple(s for s in (self._token, self._last_assertion) if s)

    def token(self, post: Post) -> str:
        """The cached token, or a fresh one. Raises OAuthError / TransportError."""
        with self._lock:
            now = self._clock()
            if self._token is not None and now < self._refresh_at:
                return self._token
            if now < self._not_before:
                raise OAuthError(
                    429, "rate limited by the token endpoint", self._not_before - now
                )
            try:
                return self._fetch(post, now)
            except (APIError, TransportError) as exc:
                if self._token is not None and now < self._expires_at - _EXPIRY_MARGIN_S:
                    # The refresh failed but the current token still works: keep using it.
                    logger.info("segment_client: OAuth token refresh failed (%s)", exc)
                    return self._token
                self._token = None
                raise

    def invalidate(self, token: str) -> None:
        """Forget `token` (the API refused it), unless a newer one replaced it already."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _assertion(self, now: float) -> str:
        issued = int(now + self._skew) - _ASSERTION_BACKDATE_S
        claims = {
            "iss": self._settings.client_id,
            "sub": self._settings.client_id,
            "aud": self.auth_server,
            "iat": issued,
            "exp": issued + _ASSERTION_BACKDATE_S + _ASSERTION_LIFETIME_S,
            "jti": str(uuid.uuid4()),
        }
        assertion: str = self._jwt.encode(
            claims, self._key, algorithm="RS256",
            headers={"kid": self._settings.key_id, "typ": "JWT"},
        )
        self._last_assertion = assertion
        return assertion

    def _fetch(self, post: Post, now: float, *, corrected: bool = False) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": _ASSERTION_TYPE,
            "client_assertion": self._assertion(now),
            "scope": self._settings.scope,
        }
        self.fetches += 1
        try:
            response = post(
                self.url, data=form, timeout=self._settings.timeout,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            )
        except requests.RequestException as exc:
            raise TransportError(
                f"OAuth token request failed: {type(exc).__name__}: "
                f"{_redact(str(exc), self.secrets)}"
            ) from None
        skew_changed = self._learn_skew(response.headers.get("Date"), now)
        status = response.status_code
        body = _redact(response.text, self.secrets)
        if status == 200:
            return self._store(response, now)
        if status == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            wait = _DEFAULT_TOKEN_RETRY_AFTER_S if wait is None else wait
            self._not_before = now + wait
            raise OAuthError(429, body, wait)
        if (
            status in (400, 401) and skew_changed and not corrected
            and any(text in body.lower() for text in _CLOCK_ERRORS)
        ):
            # Our clock is off: the assertion was rejected as expired or not yet valid.
            return self._fetch(post, now, corrected=True)
        raise OAuthError(status, body)

    def _store(self, response: requests.Response, now: float) -> str:
        try:
            data = response.json()
            token = data["access_token"]
            lifetime = float(data.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TransportError(
                "OAuth token request failed: the token endpoint's answer had no access_token"
            ) from None
        if not isinstance(token, str) or not token:
            raise TransportError("OAuth token request failed: access_token is not a string")
        self._token = token
        self._expires_at = now + lifetime
        # Refresh at half the lifetime (as analytics-node), never within the margin.
        self._refresh_at = now + min(lifetime / 2, max(0.0, lifetime - _EXPIRY_MARGIN_S))
        return token

    def _learn_skew(self, date: str | None, now: float) -> bool:
        server = parse_http_date(date)
        if server is None:
            return False
        skew = server - now
        if abs(skew - self._skew) < 2:  # the Date header has 1 s resolution
            return False
        self._skew = skew
        return True


class OAuthTransport(HTTPTransport):
    """`HTTPTransport` that authenticates with an OAuth bearer token (the write key stays
    in the body, as Segment requires). Thread-safe."""

    def __init__(
        self,
        write_key: str,
        *,
        oauth: OAuthSettings,
        auth_server: str,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        super().__init__(write_key, **options)
        self.tokens = TokenManager(oauth, auth_server=auth_server, clock=clock)
        self._headers.pop("Authorization", None)
        self._used = threading.local()

    def __repr__(self) -> str:
        return f"OAuthTransport(url={self.url!r}, auth_server={self.tokens.auth_server!r})"

    def _post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._get_session().post(url, **{**self._request_options, **kwargs})

    def auth_headers(self) -> dict[str, str]:
        token = self.tokens.token(self._post)
        self._used.token = token
        return {**self._headers, "Authorization": f"Bearer {token}"}

    def secrets(self) -> tuple[str, ...]:
        return (*super().secrets(), *self.tokens.secrets)

    def send(self, batch: Sequence[bytes], *, retry_count: int = 0) -> None:
        try:
            super().send(batch, retry_count=retry_count)
        except APIError as exc:
            if isinstance(exc, OAuthError) or exc.status not in (401, 403):
                raise
            # The token was revoked or expired early: fetch a new one and try once more.
            used = getattr(self._used, "token", None)
            if used is not None:
                self.tokens.invalidate(used)
            logger.info("segment_client: HTTP %d with an OAuth token; refreshing it", exc.status)
            super().send(batch, retry_count=retry_count)

