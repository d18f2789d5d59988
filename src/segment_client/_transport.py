"""The Transport seam and the HTTP transport that talks to the Tracking API.

A transport performs one attempt and classifies its outcome: it returns on 2xx, raises
`APIError` for any other status and `TransportError` when no HTTP answer came. Retries,
threads and batching live elsewhere.
"""

from __future__ import annotations

import base64
import gzip as _gzip
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import requests

from ._batch import build_body
from ._exceptions import APIError, TransportError
from ._messages import now_timestamp
from ._retry import parse_retry_after
from ._version import __version__

__all__ = ["USER_AGENT", "HTTPTransport", "Transport"]

USER_AGENT = f"segment-client-python/{__version__}"
# Level 6 costs ~3x level 1 for a few % smaller bodies of JSON this repetitive.
_GZIP_LEVEL = 1


@runtime_checkable
class Transport(Protocol):
    """Sends one batch of encoded messages, once. Called from one thread at a time per
    batch, but possibly from several threads (sync_mode), so implementations must be
    thread-safe."""

    def send(self, batch: Sequence[bytes], *, retry_count: int = 0) -> None:
        """Send `batch` (encoded messages, oldest first).

        `retry_count` is 0 on a first attempt and n on the n-th retry.
        Raises `APIError` on a non-2xx answer, `TransportError` on no answer.
        """
        ...

    def close(self) -> None:
        """Release connections. Later sends may fail with TransportError."""
        ...


class HTTPTransport:
    """POSTs batches to `{host}{path}` with one keep-alive `requests.Session`.

    Thread-safe. Blocks for at most `timeout` seconds per phase of a request (connect,
    then each read). After a fork the child opens its own connections.
    """

    def __init__(
        self,
        write_key: str,
        *,
        url: str,
        timeout: float = 10.0,
        gzip: bool = True,
        session_options: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self._write_key = write_key
        self.url = url
        self._timeout = timeout
        self._gzip = gzip
        self._session_options = dict(session_options or {})
        # Also passed per request: requests lets HTTPS_PROXY / REQUESTS_CA_BUNDLE override
        # session attributes, and an explicit Client option must win over the environment.
        self._request_options = {
            k: v for k, v in self._session_options.items() if k in ("proxies", "verify", "cert")
        }
        token = base64.b64encode(f"{write_key}:".encode()).decode("ascii")
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Authorization": f"Basic {token}",
            **(extra_headers or {}),
        }
        if gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        # (session, headers, cookie count, prepared template) for _prepare.
        self._template: (
            tuple[requests.Session, dict[str, str], int, requests.PreparedRequest] | None
        ) = None
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"HTTPTransport(url={self.url!r})"

    def _get_session(self) -> requests.Session:
        with self._lock:
            if self._session is None or self._pid != os.getpid():
                # A child after fork must not share the parent's pooled sockets.
                self._pid = os.getpid()
                session = requests.Session()
                for name, value in self._session_options.items():
                    setattr(session, name, value)
                if session.trust_env:
                    _freeze_environment(session, self.url, self._request_options)
                self._session = session
            return self._session

    def auth_headers(self) -> dict[str, str]:
        """Headers for the next request; a subclass may refresh credentials here."""
        return self._headers

    def secrets(self) -> tuple[str, ...]:
        """Credentials redacted from every error text (a subclass adds its own)."""
        proxies = self._request_options.get("proxies") or {}
        passwords = (urlsplit(url).password for url in proxies.values())
        return (
            self._write_key, self._headers.get("Authorization", "")[6:],
            *(p for p in passwords if p),
        )

    def send(self, batch: Sequence[bytes], *, retry_count: int = 0) -> None:
        body = build_body(batch, now_timestamp(), self._write_key)
        if self._gzip:
            body = _gzip.compress(body, compresslevel=_GZIP_LEVEL)
        headers = self.auth_headers()
        if retry_count:
            headers = {**headers, "X-Retry-Count": str(retry_count)}
        session = self._get_session()
        try:
            response = session.send(
                self._prepare(session, headers, body), timeout=self._timeout,
                allow_redirects=True, **self._request_options,
            )
        except requests.RequestException as exc:
            reason = _redact(str(exc), self.secrets())
            raise TransportError(f"{type(exc).__name__}: {reason}") from None
        if 200 <= response.status_code < 300:
            response.close()
            return
        raise APIError(
            response.status_code,
            _redact(response.text, self.secrets()),
            parse_retry_after(response.headers.get("Retry-After")),
        )

    def _prepare(
        self, session: requests.Session, headers: dict[str, str], body: bytes
    ) -> requests.PreparedRequest:
        """The POST of `body`, as `session.post` would prepare it.

        Preparing (merging session headers, cookies and hooks, parsing the URL) costs
        about as much as sending; so a template is prepared once and copied while the
        session, the headers and the session's cookies stay the same. Thread-safe: the
        cache is one tuple, replaced whole.
        """
        cookies = len(session.cookies)
        cached = self._template
        if (
            cached is None
            or cached[0] is not session
            or cached[2] != cookies
            or cached[1] != headers
        ):
            template = session.prepare_request(
                requests.Request("POST", self.url, headers=headers)
            )
            cached = (session, dict(headers), cookies, template)
            self._template = cached
        request = cached[3].copy()
        request.body = body
        request.headers["Content-Length"] = str(len(body))
        return request

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None and self._pid == os.getpid():
            session.close()


def _freeze_environment(
    session: requests.Session, url: str, explicit: Mapping[str, Any]
) -> None:
    """Resolve once what requests would read from the environment on every request.

    With `trust_env`, each request re-reads the proxy variables (walking all of
    `os.environ`), the CA bundle variables and ~/.netrc: about a third of requests'
    per-request cost. The transport only ever posts to `url`, so the result is the
    same each time; it is computed here, with the explicit options still winning,
    and the session stops looking. (~/.netrc is no longer consulted: it could only
    have replaced the write key's Authorization header.)
    """
    settings = session.merge_environment_settings(
        url, dict(explicit.get("proxies") or {}), None, explicit.get("verify"),
        explicit.get("cert"),
    )
    session.proxies = settings["proxies"]
    session.verify = settings["verify"]
    session.cert = settings["cert"]
    session.trust_env = False


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
