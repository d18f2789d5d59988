"""The collector's HTTP layer: connections, request parsing, bodies, answers.

Stdlib only: a `ThreadingHTTPServer` speaking HTTP/1.1 with keep-alive, one thread per
connection, request headers parsed without the `email` package. This module knows
nothing about Segment: every request becomes a `Request`, is handed to the `RouteTable`
(see `_routes.py`) and the handler's `Response` is written back. Connections are tracked
so `HttpServer.close_connections()` can end them at shutdown.

Bounded by construction: at most `max_connections` connections are served at once (one
more is answered 503 and closed at once, on the accepting thread, so the ones being
served keep going); a connection idle past `idle_timeout` seconds is closed, and so is
a request that has not arrived whole `idle_timeout` seconds after its first byte
(`_wire.py`: trickling clients cannot hold a slot); request lines and headers are
capped, and header lines parsers could read two ways are refused; a body is read only
with a well-formed
`Content-Length` (digits) or well-formed chunking, and never past `MAX_READ_BYTES`; a
body a handler did not read closes the connection instead of being parsed as the next
request. Every malformed request gets a 4xx naming the problem.

Extension point: none here; feature modules add routes to the route table instead.
Thread-safety: each connection is served on its own thread; `HttpServer` methods are
thread-safe.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import io
import json
import logging
import re
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ._wire import DeadlineReader, absolute_form, read_headers

if TYPE_CHECKING:
    from ._routes import RouteTable

__all__ = ["Headers", "HttpError", "HttpServer", "Request", "Response", "json_response"]

logger = logging.getLogger("segment_client.collector")

# A body this large is not read at all: the connection is answered and closed.
MAX_READ_BYTES = 8 * 1024 * 1024
_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_MAX_HEADERS = 100
_DIGITS = re.compile(rb"[0-9]{1,19}")
_HEX = re.compile(rb"[0-9a-fA-F]{1,16}")
_BUSY_BODY = b'{"success":false,"code":"busy","message":"too many connections; retry later"}'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
         % (len(_BUSY_BODY), _BUSY_BODY))
_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The `Date` header, formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


class Headers(dict[str, str]):
    """Request headers by lower-cased name (the first of repeated ones); `get` as usual."""

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


class HttpError(Exception):
    """A request refused with `status` and `reason` (`code`: a short machine word).

    `record=False`: not worth a rejection row (a bad query parameter on a read route).
    """

    def __init__(self, status: int, reason: str, code: str = "invalid_request", *,
                 record: bool = True) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = code
        self.record = record


@dataclass
class Response:
    """What a route handler answers.

    Attributes:
        status, body, content_type, headers: the answer.
        drop: close the connection without answering (an injected fault).
        close: close the connection after the answer.
        after: run once the answer is written (or failed to be): work that must not
            delay the answer. Runs on the connection's thread; exceptions are logged.
    """

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False
    close: bool = False
    after: Callable[[], None] | None = None


def json_response(
    status: int, data: Any, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """A JSON answer."""
    return Response(status, json.dumps(data).encode(), "application/json", list(headers))


class Request:
    """One parsed request as a route handler sees it. Used on one thread only.

    `target` is the request target as sent, `path` its path part; `body()` reads the body
    (once; later calls return the same bytes) and raises `HttpError` when its framing is
    bad or it is too large.
    """

    __slots__ = (
        "_body",
        "_handler",
        "_path",
        "client_address",
        "headers",
        "method",
        "target",
    )

    def __init__(self, handler: _Handler, method: str, target: str, headers: Headers) -> None:
        self._handler = handler
        self._body: bytes | None = None if handler.has_body() else b""
        self._path: str | None = None
        self.method = method
        self.target = target
        self.headers = headers
        self.client_address: tuple[str, int] = handler.client_address

    @property
    def path(self) -> str:
        """The path part of the target (no query)."""
        if self._path is None:
            target = self.target
            self._path = target if "?" not in target and "#" not in target else (
                urlsplit(target).path
            )
        return self._path

    def query(self) -> dict[str, str]:
        """The query parameters (the last of repeated ones; blank ones left out)."""
        query = parse_qs(urlsplit(self.target).query, keep_blank_values=False)
        return {key: values[-1] for key, values in query.items()}

    def body(self) -> bytes:
        """The request body (read on first call)."""
        if self._body is None:
            self._body = self._handler.read_body()
        return self._body


def _file_limit() -> int:
    try:
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):  # pragma: no cover - no limit to read
        return 1024


class HttpServer(ThreadingHTTPServer):
    """Serves `routes` on `address`; tracks and caps its connections. Thread-safe.

    Args:
        max_connections: connections served at once; kept below the process's
            open-file limit so accepting never fails for lack of descriptors.
        idle_timeout: seconds a connection may sit idle (or between two reads of a
            request) before it is closed.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], routes: RouteTable, *,
                 max_connections: int = 256, idle_timeout: float = 60.0) -> None:
        self.routes = routes
        limit = _file_limit()
        if limit > 0:
            max_connections = min(max_connections, max(limit // 2, 8))
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.refused_connections = 0
        self._active = 0
        self._closing = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                # Out of descriptors (other code in this process holds them): pause
                # briefly instead of spinning on a listening socket that stays readable.
                self._closing.wait(0.05)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            busy = self._active >= self.max_connections
            if busy:
                self.refused_connections += 1
            else:
                self._active += 1
        if busy:
            # Answered on the accepting thread without reading: a fresh socket's send
            # buffer takes these bytes at once, so this never waits on the peer.
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(_BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._conn_lock:
                self._active -= 1
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._active -= 1

    def server_close(self) -> None:
        self._closing.set()
        super().server_close()

    def counters(self) -> dict[str, int]:
        """Open connections and connections refused at the cap so far."""
        with self._conn_lock:
            return {"connections": self._active,
                    "refused_connections": self.refused_connections}

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer is normal (timeouts, dropped faults).
        logger.debug("collector: connection error from %s", client_address, exc_info=True)

    def track(self, sock: socket.socket, *, add: bool) -> None:
        """Called by connection threads as they start and end."""
        with self._conn_lock:
            if add:
                self._connections[sock] = threading.current_thread()
            else:
                self._connections.pop(sock, None)

    def close_connections(self, timeout: float) -> None:
        """Shut every open connection and wait (up to `timeout` each) for its thread."""
        with self._conn_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in connections:
            if thread is not threading.current_thread():
                thread.join(timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle plus delayed ACK
    # adds ~40 ms to every keep-alive answer.
    disable_nagle_algorithm = True
    server: HttpServer
    raw_requestline: bytes  # set by BaseHTTPRequestHandler.handle_one_request
    server_version = "segment-client-collector"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)
        self.rfile.close()  # the stdlib's reader, replaced by one bounding whole requests
        self._reader = DeadlineReader(self.connection, self.server.idle_timeout)
        self.rfile = io.BufferedReader(self._reader)
        self.server.track(self.connection, add=True)

    def handle_one_request(self) -> None:
        self._reader.next_request()
        super().handle_one_request()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the collector prints its own one line per batch

    def parse_request(self) -> bool:
        """The request line and headers, parsed without the email package.

        `http.server` parses headers with `email.parser`, the largest cost of a keep-alive
        request after the body itself. Well-formed HTTP/1.x request lines take this path
        (same outcomes: keep-alive rules, `Expect: 100-continue`, 431 for header floods);
        anything else goes to the stdlib's parser, which words the errors.
        """
        words = self.raw_requestline.split()
        if len(words) == 3 and words[2].startswith(b"HTTP/2"):
            # The stdlib would answer without a status line (it has no version yet).
            self.command, self.request_version, self.close_connection = "", "HTTP/1.1", True
            self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                            "HTTP/2 is not supported: send HTTP/1.1")
            return False
        if len(words) != 3 or words[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
            return super().parse_request()
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        command, path, version = (str(word, "iso-8859-1") for word in words)
        self.command, self.request_version = command, version
        self.close_connection = version == "HTTP/1.0"
        if path.startswith("//"):
            path = "/" + path.lstrip("/")  # as the stdlib does
        self.path = path
        headers = Headers()
        try:
            problem = read_headers(self.rfile.readline, headers, _MAX_HEADERS)
        except TimeoutError:
            problem = (HTTPStatus.REQUEST_TIMEOUT, "the request head did not arrive within "
                       f"{self.server.idle_timeout:g} s")
        if problem is None and (path[:7].lower() == "http://"
                                or path[:8].lower() == "https://"):
            reason, self.path = absolute_form(path, headers)
            problem = None if reason is None else (HTTPStatus.BAD_REQUEST, reason)
        self.headers = headers  # type: ignore[assignment]
        if problem is not None:
            # Answered in JSON and recorded like any refusal; the rest of the connection
            # cannot be trusted, so it is closed.
            status, reason = problem
            self.close_connection = True
            self._body_read = True
            code = {408: "timeout", 431: "headers_too_large"}.get(status, "invalid_request")
            self._send(self.server.routes.refuse(Request(self, command, self.path, headers),
                                                 status, reason, code))
            return False
        connection = headers.get("connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if version == "HTTP/1.1" and headers.get("expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    # -- dispatch -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        parsed: Any = self.headers
        if isinstance(parsed, Headers):
            headers = parsed
        else:  # parsed by the stdlib fallback
            headers = Headers()
            for name, value in parsed.items():
                if name.lower() not in headers:
                    dict.__setitem__(headers, name.lower(), value)
        self.headers = headers  # type: ignore[assignment]
        self._body_read = False
        request = Request(self, self.command, self.path, headers)
        response = self.server.routes.dispatch(request)
        if not self._body_read and self.has_body():
            # Unread, the body would be parsed as the next request.
            self.close_connection = True
        try:
            if response.drop:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if response.close:
                self.close_connection = True
            self._send(response)
        finally:
            if response.after is not None:
                try:
                    response.after()
                except Exception:
                    logger.exception("collector: work after an answer failed")

    do_GET = do_HEAD = do_POST = do_DELETE = do_OPTIONS = do_PUT = do_PATCH = _dispatch

    def _send(self, response: Response) -> None:
        # One write for the status line, the headers and the body.
        status, body = response.status, response.body
        head = (
            f"{self.protocol_version} {status} {_PHRASES.get(status, '')}\r\n"
            f"Server: {self.server_version}\r\nDate: {_http_date()}\r\n"
            f"Content-Type: {response.content_type}\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\n"
        )
        for name, value in response.headers:
            head += f"{name}: {value}\r\n"
        if self.close_connection:
            head += "Connection: close\r\n"
        data = (head + "\r\n").encode("latin-1")
        self.wfile.write(data if self.command == "HEAD" else data + body)

    # -- bodies ---------------------------------------------------------------------------

    def has_body(self) -> bool:
        """True when the request announces a body (chunked, or a length other than 0)."""
        headers = self.headers
        return "transfer-encoding" in headers or headers.get("content-length", "0") != "0"

    def read_body(self) -> bytes:
        """The request body, by `Content-Length` or chunked; raises HttpError.

        Any refusal closes the connection: what is left of the body cannot be skipped
        safely.
        """
        self._body_read = True
        try:
            return self._read_body()
        except HttpError:
            self.close_connection = True
            raise
        except TimeoutError:
            self.close_connection = True
            raise HttpError(408, f"the body did not arrive within {self.server.idle_timeout:g} s",
                            "timeout") from None

    def _read_body(self) -> bytes:
        headers = self.headers
        encoding = headers.get("transfer-encoding")
        length_text = headers.get("content-length")
        if encoding is not None:
            if length_text is not None:
                raise HttpError(400, "a request may not have both Transfer-Encoding and "
                                "Content-Length")
            if encoding.strip().lower() != "chunked":
                raise HttpError(501, f"unsupported Transfer-Encoding {encoding!r} "
                                "(chunked only)")
            return self._read_chunked()
        if length_text is None:
            return b""
        if not _DIGITS.fullmatch(length_text.strip().encode("latin-1", "replace")):
            raise HttpError(400, f"bad Content-Length {length_text[:40]!r}: expected a "
                            "number of bytes (digits only)")
        length = int(length_text)
        if length > MAX_READ_BYTES:
            raise HttpError(400, f"Exceed payload limit: request body is {length} bytes "
                            f"(this collector reads at most {MAX_READ_BYTES})", "too_large")
        body = self.rfile.read(length)
        if len(body) < length:
            raise HttpError(400, f"the body ended after {len(body)} of {length} bytes")
        return body

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        readline = self.rfile.readline
        while True:
            line = readline(1026)
            if not line.endswith(b"\n"):
                raise HttpError(400, "bad chunked body: a chunk size line is missing, "
                                "cut off, or over 1024 bytes")
            size_text = line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise HttpError(400, f"bad chunked body: chunk size {size_text[:20]!r} "
                                "is not a hexadecimal number")
            size = int(size_text, 16)
            if size == 0:
                for _ in range(_MAX_HEADERS + 1):
                    trailer = readline(65537)
                    if trailer in (b"\r\n", b"\n"):
                        return b"".join(parts)
                    if not trailer.endswith(b"\n"):
                        break
                raise HttpError(400, "bad chunked body: trailers missing their end, too "
                                "long or too many")
            total += size
            if total > MAX_READ_BYTES:
                raise HttpError(400, f"Exceed payload limit: chunked body over "
                                f"{MAX_READ_BYTES} bytes", "too_large")
            data = self.rfile.read(size)
            if len(data) < size:
                raise HttpError(400, "bad chunked body: it ended inside a chunk")
            parts.append(data)
            if readline(3) not in (b"\r\n", b"\n"):
                raise HttpError(400, "bad chunked body: a chunk is longer than its size")
