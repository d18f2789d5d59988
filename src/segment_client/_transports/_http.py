"""The HTTP transport: one attempt of one batch against `{host}{path}`.

Retries, threads and batching live elsewhere. An attempt is bounded as a whole (connect,
send, read) by the smaller of `request_timeout` and the time left the sender passes.
"""

from __future__ import annotations

import logging
import operator
import os
import socket
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from segment_client._batch import body_tail, build_head
from segment_client._events import Events, HttpRequestEvent, HttpResponseEvent, redact_headers
from segment_client._exceptions import APIError, TransportError
from segment_client._guard import refusal
from segment_client._log import host_port
from segment_client._messages import now_timestamp
from segment_client._retry import parse_retry_after

from . import ConnectionDropped
from ._auth import USER_AGENT, Auth, BasicAuth, redact
from ._watchdog import Watchdog, watched_adapter

if TYPE_CHECKING:
    import requests
else:
    # Bound to the module by _import_requests() when the first session is built: importing
    # requests costs more than the rest of the package, and an application (or a pytest
    # run, through the plugin) that imports segment_client without sending must not pay
    # it. Every use of `requests` below runs after _get_session().
    requests = None


def _import_requests() -> None:
    """Bind `requests` in this module (once per session built: not on the send path)."""
    global requests
    import requests

__all__ = ["USER_AGENT", "HTTPTransport"]

logger = logging.getLogger("segment_client")

# Level 6 costs ~4x level 1 for ~20% smaller bodies of JSON this repetitive; levels 2-3
# cost about the same as 1 for 2-3% smaller (measured on 700 benchmark events, 465 KB).
_GZIP_LEVEL = 1
_GZIP_WBITS = 31  # the gzip container (header and trailer), as gzip.compress writes it
# The least time an attempt is given: below it, it would fail before reaching a server.
_MIN_ATTEMPT_S = 0.001


class HTTPTransport:
    """POSTs batches to `url` with one keep-alive `requests.Session`.

    Thread-safe. One attempt blocks for at most `timeout` seconds in all (connect, send
    and read), or less when `send` is given less time. `auth` makes the `Authorization`
    header (default: the write key as Basic credentials). After a fork the child opens
    its own connections. `events`: the client's emitter for `http_request` and
    `http_response` (run on the sending thread).
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
        events: Events | None = None,
    ) -> None:
        self._write_key = write_key
        self.events = events
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
        # The last batch's body head, kept for its retries (see _PreparedBody).
        self._prepared: _PreparedBody | None = None

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
                _import_requests()
                session = requests.Session()
                adapter = watched_adapter()
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
        prepared = self._prepared
        if prepared is None or not prepared.holds(batch):
            prepared = self._prepared = _PreparedBody(batch, self._gzip)
        # sentAt is refreshed on every attempt: only the tail is built (and compressed).
        tail = body_tail(now_timestamp(), self._write_key)
        body = prepared.body(tail)
        session = self._get_session()
        watchdog = self._watchdog
        attempt = watchdog.begin(limit)
        exchange = _Exchange(prepared, tail, len(batch), retry_count)
        try:
            response = self._attempt(session, attempt.deadline, body, exchange)
        except requests.RequestException as exc:
            where = host_port(self.url)
            if attempt.expired:
                raise TransportError(
                    f"timed out after {limit:.3g} s waiting for {where}"
                ) from None
            reason = redact(_plain_reason(exc, self.url, limit), self.secrets())
            error = ConnectionDropped if _dropped(exc) else TransportError
            raise error(reason) from None
        finally:
            watchdog.end(attempt)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "POST %s: %d message(s), %s bytes, HTTP %d in %.0f ms", host_port(self.url),
                len(batch), f"{len(body):,}", response.status_code, exchange.elapsed * 1000,
            )
        if 200 <= response.status_code < 300:
            response.close()
            if self._prepared is prepared:
                self._prepared = None  # delivered: no retry will need it
            return
        raise APIError(
            response.status_code,
            redact(response.text, self.secrets()),
            parse_retry_after(response.headers.get("Retry-After")),
        )

    def _attempt(
        self, session: requests.Session, deadline: float, body: bytes, exchange: _Exchange
    ) -> requests.Response:
        clock = time.monotonic
        retry_count = exchange.retry_count
        events = self.events

        def post(url: str, **kwargs: Any) -> requests.Response:
            # A token fetch shares the attempt's time.
            kwargs["timeout"] = max(_MIN_ATTEMPT_S, min(kwargs.get("timeout", self.timeout),
                                                        deadline - clock()))
            return session.post(url, **{**self._request_options, **kwargs})

        def request(authorization: str) -> requests.Response:
            headers = {**self._headers, "Authorization": authorization}
            if retry_count:
                headers["X-Retry-Count"] = str(retry_count)
            if events is not None and events.http_request:
                self._emit_request(events, headers, body, exchange)
            started = clock()
            response = session.send(
                self._prepare(session, headers, body),
                timeout=max(_MIN_ATTEMPT_S, deadline - clock()),
                allow_redirects=True, **self._request_options,
            )
            exchange.elapsed = clock() - started
            if events is not None and events.http_response:
                self._emit_response(events, response, exchange)
            return response

        authorization = self.auth.authorization(post)
        response = request(authorization)
        if response.status_code in (401, 403) and self.auth.refused(authorization):
            # Refreshable credentials (OAuth) were refused: once more with fresh ones.
            response.close()
            response = request(self.auth.authorization(post))
        return response

    def _emit_request(
        self, events: Events, headers: dict[str, str], body: bytes, exchange: _Exchange
    ) -> None:
        secrets = self.secrets()
        raw = exchange.raw
        for secret in secrets:
            if secret:
                raw = raw.replace(secret.encode(), b"***")
        events.emit("http_request", HttpRequestEvent(
            url=self.url, method="POST", headers=redact_headers(headers, secrets), body=raw,
            size=len(body), message_count=exchange.count, retry_count=exchange.retry_count,
        ))

    def _emit_response(
        self, events: Events, response: requests.Response, exchange: _Exchange
    ) -> None:
        secrets = self.secrets()
        events.emit("http_response", HttpResponseEvent(
            url=self.url, status=response.status_code, reason=response.reason or "",
            headers=redact_headers(response.headers, secrets),
            body=redact(response.text, secrets), elapsed=exchange.elapsed,
            message_count=exchange.count, retry_count=exchange.retry_count,
        ))

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
        if self._pid == os.getpid():
            # The watchdog's thread would otherwise linger until its idle timeout.
            self._watchdog.close()
            if session is not None:
                session.close()


class _PreparedBody:
    """One batch's request body, less its tail: joined and compressed once per batch.

    The tail (`sentAt`, `writeKey`) comes last in the body, so each attempt compresses
    only the tail, from a copy of the compressor state left after the head: a retry
    costs ~50 us instead of re-joining and re-compressing ~500 KB. A different batch
    (another one, or a half after a 413 split or during poison isolation) gets its own.
    Thread-safe: never changed after construction (zlib copies under its own lock).
    """

    __slots__ = ("_compressor", "_head", "_items")

    def __init__(self, batch: Sequence[bytes], gzip: bool) -> None:
        self._items = list(batch)
        head = build_head(self._items)
        self._compressor = None
        if gzip:
            self._compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
            head = self._compressor.compress(head)
        self._head = head

    def holds(self, batch: Sequence[bytes]) -> bool:
        """True when `batch` is the same messages (the same objects) as this body's."""
        items = self._items
        return len(items) == len(batch) and all(map(operator.is_, items, batch))

    def plain(self, tail: bytes) -> bytes:
        """The whole body with `tail`, uncompressed."""
        if self._compressor is None:
            return self._head + tail
        return build_head(self._items) + tail

    def body(self, tail: bytes) -> bytes:
        """The whole body with `tail`, compressed when the transport gzips."""
        if self._compressor is None:
            return self._head + tail
        compressor = self._compressor.copy()
        return b"".join((self._head, compressor.compress(tail), compressor.flush()))


class _Exchange:
    """One attempt's facts for its events and its DEBUG line."""

    __slots__ = ("_prepared", "_tail", "count", "elapsed", "retry_count")

    def __init__(
        self, prepared: _PreparedBody, tail: bytes, count: int, retry_count: int
    ) -> None:
        self._prepared = prepared
        self._tail = tail
        self.count = count
        self.retry_count = retry_count
        self.elapsed = 0.0  # seconds from sending to the answer's headers

    @property
    def raw(self) -> bytes:
        """The body before compression (built again: only an http_request handler asks)."""
        return self._prepared.plain(self._tail)


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
    import http.client  # failures only: it imports much of `email` (see _import_requests)

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


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and everything it wraps: causes, contexts, urllib3's `reason`, arguments."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        cause = todo.pop(0)
        if any(cause is known for known in seen):
            continue
        seen.append(cause)
        todo.extend(arg for arg in cause.args if isinstance(arg, BaseException))
        for link in (getattr(cause, "reason", None), cause.__cause__, cause.__context__):
            if isinstance(link, BaseException):
                todo.append(link)
    return seen


def _plain_reason(exc: requests.RequestException, url: str, limit: float) -> str:
    """Why an attempt got no answer, in plain words naming host and port.

    requests words every connection problem as urllib3's "Max retries exceeded with
    url", which reads like this library's own `max_retries`: the cause is dug out of the
    exception chain instead.
    """
    import http.client  # failures only, as in _dropped
    import ssl

    where = host_port(url)
    chain = _chain(exc)

    def found(kind: type[BaseException] | tuple[type[BaseException], ...]) -> Any:
        return next((cause for cause in chain if isinstance(cause, kind)), None)

    if isinstance(exc, requests.exceptions.ProxyError):
        return f"the proxy could not be used to reach {where}: {_urllib3_cause(str(exc))}"
    if found(ConnectionRefusedError) is not None:
        return f"connection refused to {where}"
    if found(socket.gaierror) is not None or any(
        type(cause).__name__ == "NameResolutionError" for cause in chain
    ):
        return f"could not resolve the host name of {where}"
    certificate = found(ssl.SSLCertVerificationError)
    if certificate is not None:
        why = certificate.verify_message or certificate.reason or certificate
        return f"the TLS certificate of {where} was not accepted: {why}"
    tls = found(ssl.SSLError)
    if tls is not None:
        return f"TLS failed with {where}: {tls.reason or tls}"
    if isinstance(exc, requests.ConnectTimeout):
        return f"timed out after {limit:.3g} s connecting to {where}"
    if isinstance(exc, requests.Timeout) or found(TimeoutError) is not None:
        return f"timed out after {limit:.3g} s waiting for {where}"
    if found((http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
              http.client.IncompleteRead)) is not None:
        return f"{where} closed the connection without a complete answer"
    os_error = next((c for c in chain if isinstance(c, OSError) and c.errno), None)
    if os_error is not None:
        return f"could not connect to {where}: {os_error.strerror or os_error}"
    inner = chain[-1]
    return f"{type(inner).__name__} talking to {where}: {_urllib3_cause(str(inner))}"


def _urllib3_cause(text: str) -> str:
    """`text` without urllib3's "Max retries exceeded with url: ..." wrapper."""
    if "Max retries exceeded" not in text:
        return text
    return text.partition("(Caused by ")[2].removesuffix(")") or "no answer"
