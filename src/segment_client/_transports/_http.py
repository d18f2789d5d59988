"""The HTTP transport: one attempt of one batch against `{host}{path}`.

Retries, threads and batching live elsewhere. An attempt is bounded as a whole (connect,
send, read) by the smaller of `request_timeout` and the time left the sender passes.
"""

from __future__ import annotations

import gzip as _gzip
import http.client
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests

from segment_client._batch import build_body
from segment_client._exceptions import APIError, TransportError
from segment_client._guard import refusal
from segment_client._messages import now_timestamp
from segment_client._retry import parse_retry_after

from . import ConnectionDropped
from ._auth import USER_AGENT, Auth, BasicAuth, redact
from ._watchdog import Watchdog, WatchedAdapter

__all__ = ["USER_AGENT", "HTTPTransport"]

# Level 6 costs ~3x level 1 for a few % smaller bodies of JSON this repetitive.
_GZIP_LEVEL = 1
# The least time an attempt is given: below it, it would fail before reaching a server.
_MIN_ATTEMPT_S = 0.001


class HTTPTransport:
    """POSTs batches to `url` with one keep-alive `requests.Session`.

    Thread-safe. One attempt blocks for at most `timeout` seconds in all (connect, send
    and read), or less when `send` is given less time. `auth` makes the `Authorization`
    header (default: the write key as Basic credentials). After a fork the child opens
    its own connections.
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
        auth: Auth | None = None,
    ) -> None:
        self._write_key = write_key
        self.url = url
        self.timeout = timeout
        self.auth: Auth = auth if auth is not None else BasicAuth(write_key)
        self._gzip = gzip
        self._session_options = dict(session_options or {})
        # Also passed per request: requests lets HTTPS_PROXY / REQUESTS_CA_BUNDLE override
        # session attributes, and an explicit Client option must win over the environment.
        self._request_options = {
            k: v for k, v in self._session_options.items() if k in ("proxies", "verify", "cert")
        }
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **(extra_headers or {}),
        }
        if gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._watchdog = Watchdog()
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
                if self._pid != os.getpid():
                    # A child after fork must not share the parent's pooled sockets, nor
                    # its watchdog (whose thread did not survive the fork).
                    self._pid = os.getpid()
                    self._watchdog = Watchdog()
                session = requests.Session()
                adapter = WatchedAdapter()
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                for name, value in self._session_options.items():
                    setattr(session, name, value)
                if session.trust_env:
                    _freeze_environment(session, self.url, self._request_options)
                self._session = session
            return self._session

    def secrets(self) -> tuple[str, ...]:
        """Credentials redacted from every error text."""
        proxies = self._request_options.get("proxies") or {}
        passwords = (urlsplit(url).password for url in proxies.values())
        return (self._write_key, *self.auth.secrets(), *(p for p in passwords if p))

    def send(
        self, batch: Sequence[bytes], *, retry_count: int = 0, timeout: float | None = None
    ) -> None:
        refused = refusal(self.url)
        if refused is not None:
            raise TransportError(refused)
        limit = self.timeout if timeout is None else max(_MIN_ATTEMPT_S, min(timeout, self.timeout))
        body = build_body(batch, now_timestamp(), self._write_key)
        if self._gzip:
            body = _gzip.compress(body, compresslevel=_GZIP_LEVEL)
        session = self._get_session()
        watchdog = self._watchdog
        attempt = watchdog.begin(limit)
        try:
            response = self._attempt(session, attempt.deadline, body, retry_count)
        except requests.RequestException as exc:
            if attempt.expired:
                raise TransportError(
                    f"timed out: no complete answer within {limit:.3g} s"
                ) from None
            reason = redact(str(exc), self.secrets())
            error = ConnectionDropped if _dropped(exc) else TransportError
            raise error(f"{type(exc).__name__}: {reason}") from None
        finally:
            watchdog.end(attempt)
        if 200 <= response.status_code < 300:
            response.close()
            return
        raise APIError(
            response.status_code,
            redact(response.text, self.secrets()),
            parse_retry_after(response.headers.get("Retry-After")),
        )

    def _attempt(
        self, session: requests.Session, deadline: float, body: bytes, retry_count: int
    ) -> requests.Response:
        clock = time.monotonic

        def post(url: str, **kwargs: Any) -> requests.Response:
            # A token fetch shares the attempt's time.
            kwargs["timeout"] = max(_MIN_ATTEMPT_S, min(kwargs.get("timeout", self.timeout),
                                                        deadline - clock()))
            return session.post(url, **{**self._request_options, **kwargs})

        def request(authorization: str) -> requests.Response:
            headers = {**self._headers, "Authorization": authorization}
            if retry_count:
                headers["X-Retry-Count"] = str(retry_count)
            return session.send(
                self._prepare(session, headers, body),
                timeout=max(_MIN_ATTEMPT_S, deadline - clock()),
                allow_redirects=True, **self._request_options,
            )

        authorization = self.auth.authorization(post)
        response = request(authorization)
        if response.status_code in (401, 403) and self.auth.refused(authorization):
            # Refreshable credentials (OAuth) were refused: once more with fresh ones.
            response.close()
            response = request(self.auth.authorization(post))
        return response

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


def _dropped(exc: BaseException) -> bool:
    """True when a server took the request and closed the connection without answering
    (as opposed to no server at all: refused, unreachable, DNS, TLS)."""
    seen: list[BaseException] = [exc]
    while seen:
        cause = seen.pop()
        if isinstance(cause, ConnectionRefusedError):
            return False
        if isinstance(
            cause, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError
            | http.client.IncompleteRead
        ):
            return True
        seen.extend(arg for arg in cause.args if isinstance(arg, BaseException))
        if cause.__cause__ is not None:
            seen.append(cause.__cause__)
    return False
