"""Authentication of Tracking API requests: the write key (Basic) or OAuth 2.0 tokens.

The HTTP transport asks its auth object for the `Authorization` header of each attempt
and tells it when the API refused that header (401/403). `BasicAuth` sends the write key,
as Segment requires by default. `OAuth` does it the way Segment's own libraries do: a JWT
client assertion (RS256, header `kid`) is exchanged at `{auth_server}/token` for a bearer
token (client-credentials grant). The token is cached and refreshed at half its lifetime;
a 401/403 discards it and the transport sends once more with a fresh one. The token
endpoint's 429 is honoured: no request is made to it before its `Retry-After` has
passed, and the consumer waits that long before the next attempt.

Tokens are fetched lazily, by the thread that sends: the consumer thread (or the caller's
thread in `sync_mode`). OAuth needs the `oauth` extra: `pip install 'segment-client[oauth]'`.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from segment_client._checks import check_number
from segment_client._exceptions import (
    APIError,
    ConfigurationError,
    MissingDependencyError,
    TransportError,
)
from segment_client._retry import parse_http_date, parse_retry_after
from segment_client._version import __version__

if TYPE_CHECKING:
    # Imported where a token is fetched: importing segment_client must not import requests.
    import requests

__all__ = [
    "DEFAULT_SCOPE",
    "USER_AGENT",
    "Auth",
    "BasicAuth",
    "OAuth",
    "OAuthError",
    "OAuthSettings",
    "TokenManager",
    "redact",
]

USER_AGENT = f"segment-client-python/{__version__}"

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

Post = Callable[..., "requests.Response"]


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
        check_number("OAuthSettings.timeout", self.timeout, minimum=0, inclusive=False)

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
                    logger.info("OAuth token refresh failed (%s)", exc)
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
        import requests  # a token fetch is rare (once per token lifetime): no cache needed

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
                f"{redact(str(exc), self.secrets)}"
            ) from None
        skew_changed = self._learn_skew(response.headers.get("Date"), now)
        status = response.status_code
        body = redact(response.text, self.secrets)
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


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every credential in `secrets` replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class Auth(Protocol):
    """How the HTTP transport authenticates. Implementations are thread-safe."""

    def authorization(self, post: Post) -> str:
        """The `Authorization` header value for the next attempt.

        `post(url, **kwargs)` makes a request on the transport's session (for a token
        fetch), bounded by the attempt's time left. Raises `DeliveryError` subclasses.
        """
        ...

    def refused(self, authorization: str) -> bool:
        """The API answered 401/403 to `authorization`: True when a new attempt with a
        fresh value is worth making (the value is forgotten)."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Credentials to redact from every error text and log."""
        ...


class BasicAuth:
    """The write key as HTTP Basic credentials (`base64(key + ":")`). Immutable."""

    def __init__(self, write_key: str) -> None:
        self._token = base64.b64encode(f"{write_key}:".encode()).decode("ascii")
        self._header = f"Basic {self._token}"
        self._write_key = write_key

    def __repr__(self) -> str:
        return "BasicAuth(***)"

    def authorization(self, post: Post) -> str:
        return self._header

    def refused(self, authorization: str) -> bool:
        return False  # the same key would be refused again

    def secrets(self) -> tuple[str, ...]:
        return (self._write_key, self._token)


class OAuth:
    """OAuth bearer tokens from a `TokenManager`. Thread-safe.

    The token used is returned to the transport with each header, never kept per thread:
    `refused(authorization)` names the token the API turned down.
    """

    def __init__(
        self,
        settings: OAuthSettings,
        *,
        auth_server: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens = TokenManager(settings, auth_server=auth_server, clock=clock)

    def __repr__(self) -> str:
        return f"OAuth(auth_server={self.tokens.auth_server!r})"

    def authorization(self, post: Post) -> str:
        return "Bearer " + self.tokens.token(post)

    def refused(self, authorization: str) -> bool:
        # The token was revoked or expired early: forget it and try once more.
        self.tokens.invalidate(authorization.removeprefix("Bearer "))
        logger.info("the API refused an OAuth token; refreshing it")
        return True

    def secrets(self) -> tuple[str, ...]:
        return self.tokens.secrets
