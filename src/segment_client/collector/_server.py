"""The local Segment-compatible collector: HTTP server, ingest, read API, faults.

Stdlib only (orjson used when installed): `ThreadingHTTPServer` speaking HTTP/1.1 with
keep-alive, one thread per connection, request headers parsed without the `email`
package. Each ingest request is checked (size, JSON, write key, strict validity), answered,
then validated message by message and stored with one batched insert on the same thread;
every read waits for the batches answered before it, so whatever was answered 200 is
visible to every later read. (A separate writer thread was measured: the GIL hand-offs
around SQLite cost ~20% more CPU per event, so the store is written inline.)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import email.utils
import json
import logging
import mimetypes
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from ._faults import Fault, FaultPlan
from ._parse import dumps_fast, loads_fast, parse_batch
from ._store import Store, StoredMessage
from ._validate import MESSAGE_TYPES, validate_message

__all__ = ["MAX_MESSAGE_BYTES", "MAX_REQUEST_BYTES", "Collector", "Validator"]

logger = logging.getLogger("segment_client.collector")

Validator = Callable[[dict[str, Any]], list[str]]

# The Tracking API's limits: 32 KB per message (and per single-message request),
# 500 KB per batch request; both answered 400 "Exceed payload limit".
MAX_MESSAGE_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
# A body this large is not read at all: the connection is answered and closed.
_MAX_READ_BYTES = 8 * 1024 * 1024
_STATIC = Path(__file__).parent / "static"
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".map": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
_SINGLE_ROUTES = {f"/v1/{kind}": kind for kind in MESSAGE_TYPES}
_INGEST_ROUTES = {"/v1/batch", "/v1/import", *_SINGLE_ROUTES}
# The violations of a message without any (shared, never modified).
_NONE: list[str] = []
# The answer to an accepted request, encoded once.
_ACCEPTED: dict[str, Any] = {"success": True}
_SUCCESS = json.dumps(_ACCEPTED).encode()
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


class _Headers(dict[str, str]):
    """Request headers by lower-cased name (the first of repeated ones); `get` as usual."""

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_MAX_HEADERS = 100
_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The `Date` header, formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


class _Reject(Exception):
    """An ingest request refused with `status` and `reason`."""

    def __init__(self, status: int, reason: str, code: str = "invalid_request") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class _Job:
    """One request's checked messages, to validate and store."""

    received_at: str
    path: str
    single: str | None
    messages: list[tuple[Any, str]]
    validated: bool


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    collector: Collector

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer is normal (timeouts, dropped faults).
        logger.debug("collector: connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle plus delayed ACK
    # adds ~40 ms to every keep-alive answer.
    disable_nagle_algorithm = True
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 120
    server: _Server
    raw_requestline: bytes  # set by BaseHTTPRequestHandler.handle_one_request
    server_version = "segment-client-collector"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.server.collector._track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.collector._track_connection(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the collector prints its own one line per batch

    # -- plumbing -----------------------------------------------------------------------

    def parse_request(self) -> bool:
        """The request line and headers, parsed without the email package.

        `http.server` parses headers with `email.parser`, the largest cost of a keep-alive
        request after the body itself. Well-formed HTTP/1.x request lines take this path
        (same outcomes: keep-alive rules, `Expect: 100-continue`, 431 for header floods);
        anything else goes to the stdlib's parser, which words the errors.
        """
        words = self.raw_requestline.split()
        if len(words) != 3 or words[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
            return super().parse_request()
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        command, path, version = (str(word, "iso-8859-1") for word in words)
        self.command, self.request_version = command, version
        self.close_connection = version == "HTTP/1.0"
        if path.startswith("//"):
            path = "/" + path.lstrip("/")  # as the stdlib does
        self.path = path
        headers = _Headers()
        readline = self.rfile.readline
        last = ""
        for _ in range(_MAX_HEADERS + 1):
            line = readline(65537)
            if len(line) > 65536:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            text = str(line, "iso-8859-1")
            if text[0] in " \t" and last:  # an obsolete folded continuation line
                headers[last] = f"{headers[last]} {text.strip()}"
                continue
            name, _, value = text.partition(":")
            last = name.strip().lower()
            if last not in headers:
                dict.__setitem__(headers, last, value.strip())
            else:
                last = ""  # a repeated header: the first one counts, as with email.message
        else:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
            return False
        self.headers = headers  # type: ignore[assignment]
        connection = headers.get("connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if version == "HTTP/1.1" and headers.get("expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        # One write for the status line, the headers and the body.
        head = (
            f"{self.protocol_version} {status} {_PHRASES.get(status, '')}\r\n"
            f"Server: {self.server_version}\r\nDate: {_http_date()}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\n"
        )
        for name, value in headers:
            head += f"{name}: {value}\r\n"
        if self.close_connection:
            head += "Connection: close\r\n"
        data = (head + "\r\n").encode("latin-1")
        self.wfile.write(data if self.command == "HEAD" else data + body)

    def _json(self, status: int, data: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        body = _SUCCESS if data is _ACCEPTED else json.dumps(data).encode()
        self._send(status, body, "application/json", headers)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            self.close_connection = True
            raise _Reject(400, f"bad Content-Length {length_text!r}") from None
        if length > _MAX_READ_BYTES:
            self.close_connection = True  # the unread body makes the connection unusable
            raise _Reject(400, f"Exceed payload limit: request body is {length} bytes", "too_large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > _MAX_READ_BYTES:
                self.close_connection = True
                raise _Reject(400, "Exceed payload limit: chunked body too large", "too_large")
            parts.append(self.rfile.read(size))
            self.rfile.readline(16)

    def _query(self) -> dict[str, str]:
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=False)
        return {key: values[-1] for key, values in query.items()}

    # -- routes -------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        collector = self.server.collector
        try:
            if path in ("/", "/index.html"):
                self._static("index.html")
            elif path.startswith("/static/"):
                self._static(path[len("/static/") :])
            elif path == "/v1/events":
                query = self._query()
                events, last = collector.store.events(
                    type=query.get("type") or None,
                    event=query.get("event") or None,
                    user_id=query.get("user_id") or None,
                    q=query.get("q") or None,
                    after=_int_arg(query, "after", None),
                    limit=_int_arg(query, "limit", 100, maximum=10_000),
                )
                self._json(200, {"events": events, "last_id": last})
            elif path == "/v1/rejections":
                query = self._query()
                rejections = collector.store.rejections(
                    after=_int_arg(query, "after", None),
                    limit=_int_arg(query, "limit", 100, maximum=10_000),
                )
                self._json(200, {"rejections": rejections})
            elif path == "/v1/stats":
                self._json(200, collector.stats())
            elif path == "/v1/faults":
                self._json(200, collector.faults())
            elif path == "/health":
                self._json(200, {"ok": True})
            else:
                self._json(404, {"error": f"no route GET {path}"})
        except _Reject as exc:
            self._json(exc.status, {"error": exc.reason})

    do_HEAD = do_GET

    def _static(self, name: str) -> None:
        root = _STATIC.resolve()
        target = (root / name).resolve()
        if not name or root not in target.parents or not target.is_file():
            self._json(404, {"error": f"no static file {name!r}"})
            return
        suffix = target.suffix.lower()
        content_type = _CONTENT_TYPES.get(suffix) or (
            mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        )
        self._send(200, target.read_bytes(), content_type)

    def do_POST(self) -> None:
        path = self.path if self.path in _INGEST_ROUTES else urlsplit(self.path).path
        collector = self.server.collector
        if path in _INGEST_ROUTES:
            self._ingest(path)
            return
        try:
            body = self._read_body()
            if path == "/v1/clear":
                collector.clear()
                self._json(200, {"success": True})
            elif path == "/v1/faults":
                try:
                    data = json.loads(body or b"{}")
                    if not isinstance(data, dict):
                        raise ValueError("expected a JSON object {faults: [...], seed: n}")
                    faults = [Fault.from_dict(item) for item in data.get("faults") or []]
                    seed = data.get("seed")
                    collector.set_faults(*faults, seed=None if seed is None else int(seed))
                except (ValueError, TypeError) as exc:
                    raise _Reject(400, str(exc)) from None
                self._json(200, collector.faults())
            else:
                self._json(404, {"error": f"no route POST {path}"})
        except _Reject as exc:
            self._json(exc.status, {"error": exc.reason})

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        self._read_body()
        if path == "/v1/faults":
            self.server.collector.set_faults()
            self._json(200, self.server.collector.faults())
        else:
            self._json(404, {"error": f"no route DELETE {path}"})

    # -- ingest -------------------------------------------------------------------------

    def _ingest(self, path: str) -> None:
        collector = self.server.collector
        received_at = _now()
        fault = collector.plan.pick()
        if fault is not None and fault.delay and collector._stopping.wait(fault.delay):
            self.close_connection = True
            return
        try:
            body = self._read_body()
        except _Reject as exc:
            collector._reject(received_at, path, exc.status, exc.reason)
            self._json(exc.status, {"success": False, "code": exc.code, "message": exc.reason})
            return
        with collector._counter_lock:
            collector.requests += 1
        if fault is not None and not fault.store and (fault.drop or fault.status):
            self._inject(fault, path, received_at, 0)
            return
        try:
            job = collector._check(path, self.headers, body, received_at)
        except _Reject as exc:
            collector._reject(received_at, path, exc.status, exc.reason)
            self._json(exc.status, {"success": False, "code": exc.code, "message": exc.reason})
            return
        if fault is not None and (fault.drop or fault.status):
            collector._write(job)
            self._inject(fault, path, received_at, len(job.messages))
            return
        # Answer first, then store: the client prepares its next batch while this one is
        # written (the two processes overlap instead of taking turns). Every read waits
        # for the batches answered before it (Store.hold), so whatever was answered 200
        # is still visible to every later read.
        ticket = collector.store.hold()
        try:
            self._json(200, _ACCEPTED)
        finally:
            try:
                collector._write(job)
            except Exception as exc:  # noqa: BLE001 - answered already: report, never hide
                collector._store_failed(job, exc)
            finally:
                collector.store.release(ticket)

    def _inject(self, fault: Fault, path: str, received_at: str, stored: int) -> None:
        collector = self.server.collector
        after = f" after storing {stored} message(s)" if fault.store else ""
        with collector._counter_lock:
            collector.faults_injected += 1
            collector.fault_stored_messages += stored
        if fault.drop:
            collector._reject(received_at, path, 0, f"injected fault: connection dropped{after}")
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        status = int(fault.status or 500)
        headers = []
        if fault.retry_after is not None:
            headers.append(("Retry-After", f"{fault.retry_after:g}"))
        collector._reject(received_at, path, status, f"injected fault: {status}{after}")
        self._json(status, {"success": False, "code": "injected_fault",
                            "message": f"injected fault: {status}"}, headers)


def _int_arg(query: dict[str, str], name: str, default: int | None,
             maximum: int | None = None) -> int | None:
    if name not in query:
        return default
    try:
        value = int(query[name])
    except ValueError:
        raise _Reject(400, f"{name} must be an integer, got {query[name]!r}") from None
    if value < 0:
        raise _Reject(400, f"{name} must be >= 0, got {value}")
    return min(value, maximum) if maximum is not None else value


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise _Reject(415, f"unsupported Content-Encoding {encoding!r} (gzip or deflate)")
    # Bounded: a gzip bomb stops one byte past the request limit.
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, MAX_REQUEST_BYTES + 1)
    except zlib.error as exc:
        raise _Reject(400, f"body is not valid {encoding}: {exc}") from None
    return data


class Collector:
    """A Segment-compatible collector on a local port, in this process.

    ```python
    with Collector() as collector:          # :memory: store, a free loopback port
        client = Client("key", host=collector.url)
        ...
        assert collector.stats()["total"] == 10
    ```

    Thread-safe. `start()` returns once the port is listening; the server runs on
    daemon threads. `stop()` closes every connection and returns when they are gone.

    Args:
        host, port: where to listen (port 0: a free port, see `url`).
        db: the SQLite database: `:memory:` or a file path (kept between runs).
        write_key: when set, requests with another key (or none) get 401.
        strict: answer 400 to a request with any invalid message (the real API answers
            200 and drops the invalid ones; so does the collector by default, recording
            each in the rejections).
        faults, seed: fault rules applied to ingest requests, with a seeded generator.
        validator: `validator(message) -> list[str]` run on each valid message; its
            strings are stored as the message's `violations`.
        log: a stream for one line per batch (None: quiet).
        discard: count only (totals, types, events, duplicates, batches) without
            validating or storing messages: for benchmarks that must not measure SQLite.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        db: str = ":memory:",
        write_key: str | None = None,
        strict: bool = False,
        faults: Iterable[Fault] = (),
        seed: int | None = None,
        validator: Validator | None = None,
        log: TextIO | None = None,
        discard: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.write_key = write_key
        self.strict = strict
        self.validator = validator
        self.log = log
        self.discard = discard
        self.store = Store(db, persist=not discard)
        self.plan = FaultPlan(list(faults), seed)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._conn_lock = threading.Lock()
        self._counter_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self.requests = 0
        self.faults_injected = 0
        self.fault_stored_messages = 0
        # Batch ids: unique across runs sharing a database file, cheap to make.
        self._batch_prefix = uuid.uuid4().hex[:6]
        self._batch_seq = 0

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give a client as `host` (no path)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> str:
        """Listen and serve on a background thread; returns `url`."""
        if self._server is not None:
            return self.url
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.collector = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name="segment_client.collector", daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close open connections and wait for their threads."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._conn_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in connections:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def close(self) -> None:
        """Stop and close the store."""
        self.stop()
        self.store.close()

    def serve_forever(self) -> None:
        """Start (if needed) and block until `stop()` or KeyboardInterrupt."""
        self.start()
        try:
            while not self._stopping.wait(3600):
                pass
        finally:
            self.stop()

    def __enter__(self) -> Collector:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _track_connection(self, sock: socket.socket, *, add: bool) -> None:
        with self._conn_lock:
            if add:
                self._connections[sock] = threading.current_thread()
            else:
                self._connections.pop(sock, None)

    # -- reading ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts by type and track event, totals, duplicates, rejections, batches, faults."""
        stats = self.store.stats()
        with self._counter_lock:
            stats["requests"] = self.requests
            stats["faults_injected"] = self.faults_injected
            stats["fault_stored_messages"] = self.fault_stored_messages
        return stats

    def events(self, **filters: Any) -> list[dict[str, Any]]:
        """Stored records, newest first, like `GET /v1/events` (same filters; no limit)."""
        filters.setdefault("limit", None)
        return self.store.events(**filters)[0]

    def messages(self, **filters: Any) -> list[dict[str, Any]]:
        """Stored messages (the dicts as sent), oldest first, duplicates included."""
        filters.setdefault("limit", None)
        events, _ = self.store.events(oldest_first=True, **filters)
        return [event["message"] for event in events]

    def rejections(self, **filters: Any) -> list[dict[str, Any]]:
        """Rejected requests, newest first, like `GET /v1/rejections`."""
        filters.setdefault("limit", None)
        return self.store.rejections(**filters)

    def wait_for(self, total: int, timeout: float | None = 5.0) -> bool:
        """Block until at least `total` messages were stored (or `timeout` passed)."""
        return self.store.wait(lambda store: store.total >= total, timeout)

    def clear(self) -> None:
        """Empty the store and the request counters (faults stay)."""
        self.store.clear()
        with self._counter_lock:
            self.requests = self.faults_injected = self.fault_stored_messages = 0

    # -- faults -------------------------------------------------------------------------

    def set_faults(self, *faults: Fault, seed: int | None = None) -> None:
        """Replace the fault rules (none: no faults) and reseed the generator."""
        self.plan.set(list(faults), seed)

    def faults(self) -> dict[str, Any]:
        """The active rules with their `injected` counters, and the seed."""
        return self.plan.to_dict()

    # -- ingest (called by handler threads) ---------------------------------------------

    def _reject(self, received_at: str, path: str, status: int, reason: str) -> None:
        self.store.add_rejection(received_at, path, status, reason)
        if self.log is not None:
            self._print(f"{received_at[11:23]}  {path:<12} rejected {status or 'drop'}: {reason}")

    def _print(self, line: str) -> None:
        assert self.log is not None
        with self._log_lock, contextlib.suppress(OSError, ValueError):
            print(line, file=self.log, flush=True)

    def _check_key(self, headers: Any, data: dict[str, Any]) -> None:
        if self.write_key is None:
            return
        auth = headers.get("Authorization", "")
        key: str | None = None
        if auth[:6].lower() == "basic ":
            try:
                key = base64.b64decode(auth[6:].strip(), validate=True).decode().split(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                raise _Reject(401, "Authorization header is not valid Basic auth",
                              "unauthorized") from None
        elif isinstance(data.get("writeKey"), str):
            key = data["writeKey"]
        if not key:
            raise _Reject(401, "missing write key (Basic auth or writeKey in the body)",
                          "unauthorized")
        if key != self.write_key:
            raise _Reject(401, "invalid write key", "unauthorized")

    def _accept(
        self, path: str, headers: Any, body: bytes, received_at: str
    ) -> tuple[int, dict[str, Any]]:
        """Check and store one ingest request (`_check`, then `_write`).

        Returns (messages, answer) or raises _Reject.
        """
        job = self._check(path, headers, body, received_at)
        self._write(job)
        return len(job.messages), _ACCEPTED

    def _check(self, path: str, headers: Any, body: bytes, received_at: str) -> _Job:
        """Everything that decides the answer: size, encoding, JSON, key, strict validity.

        Returns the messages to store, or raises _Reject.
        """
        single = _SINGLE_ROUTES.get(path)
        limit = MAX_MESSAGE_BYTES if single else MAX_REQUEST_BYTES
        if len(body) > limit:
            raise _Reject(400, f"Exceed payload limit: request is over {limit} bytes",
                          "too_large")
        data_bytes = _decompress(body, headers.get("Content-Encoding", ""))
        if len(data_bytes) > limit:
            raise _Reject(400, f"Exceed payload limit: request is over {limit} bytes",
                          "too_large")
        checked = None if single else self._checked_fast(headers, data_bytes)
        if checked is None:
            checked = self._checked(headers, data_bytes, single)
        problems: list[str] | None = None
        if self.strict:
            problems = self._problems(checked, single)
            if problems:
                raise _Reject(
                    400, "invalid message(s): " + " | ".join(problems), "invalid_message"
                )
        return _Job(received_at, path, single, checked, problems is not None)

    def _checked_fast(self, headers: Any, data_bytes: bytes) -> list[tuple[Any, str]] | None:
        """A batch decoded by orjson, each message re-encoded compactly for storage.

        None when orjson is missing or refuses the body, and when a message could be over
        the size limit as sent (whitespace or escapes the compact form does not have):
        the exact path (`_checked`) then decides, with the same outcome and messages.
        """
        if loads_fast is None:
            return None
        try:
            data = loads_fast(data_bytes)
        except ValueError:  # orjson.JSONDecodeError; the stdlib path words the error
            return None
        if type(data) is not dict:
            return None
        items = data.get("batch")
        if type(items) is not list:
            return None
        self._check_key(headers, data)
        context = data.get("context")
        if type(context) is not dict:
            context = None
        if context is not None:
            for message in items:
                if type(message) is dict and "context" not in message:
                    message["context"] = context  # batch-level context applies to each
        raws = list(map(dumps_fast, items))
        sizes = list(map(len, raws))
        # Each message as sent is at most its compact size plus everything in the body
        # that is not a compact message (framing, whitespace, longer escapes).
        slack = max(len(data_bytes) - sum(sizes), 0)
        largest = max(sizes, default=0)
        if len(data_bytes) > MAX_MESSAGE_BYTES and largest + slack > MAX_MESSAGE_BYTES:
            return None
        return list(zip(items, [raw.decode() for raw in raws], strict=True))

    def _checked(
        self, headers: Any, data_bytes: bytes, single: str | None
    ) -> list[tuple[Any, str]]:
        """The request's messages with their JSON texts as sent (stdlib parser)."""
        try:
            text = data_bytes.decode("utf-8-sig")
            if single:
                value, items = json.loads(text), None
                if not isinstance(value, dict):
                    raise TypeError(type(value).__name__)
                data: dict[str, Any] = value
            else:
                data, items = parse_batch(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Reject(400, f"malformed JSON: {exc}", "invalid_json") from None
        except TypeError as exc:
            raise _Reject(400, f"the body must be a JSON object, got {exc}") from None
        self._check_key(headers, data)
        if single:
            messages: list[tuple[Any, str | None]] = [(data, None)]
        elif items is None:
            raise _Reject(400, "the body needs a batch array: {\"batch\": [...]}")
        else:
            messages = list(items)
        context = None if single else data.get("context")
        checked: list[tuple[Any, str]] = []
        for index, (message, raw) in enumerate(messages):
            if isinstance(message, dict):
                if single and "type" not in message:
                    message["type"] = single
                    raw = None
                if isinstance(context, dict) and "context" not in message:
                    message["context"] = context  # batch-level context applies to each
                    raw = None
            if raw is None:
                raw = _DUMPS(message)
            # len() counts characters; only a long text needs its exact UTF-8 size.
            if len(raw) * 4 > MAX_MESSAGE_BYTES and len(raw.encode()) > MAX_MESSAGE_BYTES:
                raise _Reject(
                    400,
                    f"Exceed payload limit: message {index} is {len(raw.encode())} bytes "
                    f"(limit {MAX_MESSAGE_BYTES})",
                    "too_large",
                )
            checked.append((message, raw))
        return checked

    # -- storing ------------------------------------------------------------------------

    def _problems(self, checked: list[tuple[Any, str]], single: str | None) -> list[str]:
        problems = []
        for index, (message, _) in enumerate(checked):
            reasons = validate_message(message, single)
            if reasons:
                problems.append(f"message {index}{_describe(message)}: {'; '.join(reasons)}")
        return problems

    def _write(self, job: _Job) -> None:
        validator = self.validator
        problems: list[str] = []
        if job.validated or self.discard:
            accepted: list[StoredMessage] = [(m, raw, _NONE) for m, raw in job.messages]
        else:
            accepted = []
            append = accepted.append
            single = job.single
            for index, (message, raw) in enumerate(job.messages):
                reasons = validate_message(message, single)
                if reasons:
                    problems.append(
                        f"message {index}{_describe(message)}: {'; '.join(reasons)}"
                    )
                else:
                    append((message, raw, _NONE))
        if validator is not None:
            accepted = [(m, raw, self._violations(m)) for m, raw, _ in accepted]
        with self._counter_lock:
            self._batch_seq += 1
            batch_id = f"{self._batch_prefix}-{self._batch_seq}"
        duplicates = 0
        if accepted:
            _, duplicates = self.store.add_batch(batch_id, job.received_at, accepted)
        for problem in problems:
            self._reject(job.received_at, job.path, 200, f"dropped invalid {problem}")
        if self.log is not None and accepted:
            self._print(_batch_line(job.received_at, job.path, batch_id, accepted, duplicates))

    def _store_failed(self, job: _Job, exc: Exception) -> None:
        """A batch answered 200 could not be stored (a locked or full database file)."""
        reason = (f"answered 200 but stored none of {len(job.messages)} message(s): "
                  f"{type(exc).__name__}: {exc}")
        logger.error("collector: %s", reason)
        with contextlib.suppress(Exception):
            self._reject(job.received_at, job.path, 500, reason)

    def _violations(self, message: dict[str, Any]) -> list[str]:
        if self.validator is None:
            return []
        try:
            return [str(v) for v in self.validator(message)]
        except Exception as exc:  # noqa: BLE001 - a broken plan must not break ingestion
            return [f"validator raised {type(exc).__name__}: {exc}"]


def _describe(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    parts = [str(message.get("type", "?"))]
    if message.get("messageId"):
        parts.append(f"messageId={message['messageId']}")
    return f" ({', '.join(parts)})"


def _batch_line(
    received_at: str, path: str, batch_id: str, accepted: list[StoredMessage], duplicates: int
) -> str:
    counts: dict[str, int] = {}
    for message, _, _ in accepted:
        kind = str(message.get("type"))
        counts[kind] = counts.get(kind, 0) + 1
    by_type = " ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    dup = f"  {duplicates} duplicate(s)" if duplicates else ""
    return (
        f"{received_at[11:23]}  {path:<12} batch {batch_id}  {len(accepted):>4} msg  "
        f"{by_type}{dup}"
    )
