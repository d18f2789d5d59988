"""The local Segment-compatible collector: `Collector` ties the pieces together.

The pieces, each in its own module: the HTTP layer (`_http.py`: connections, request
parsing, answers), the route table and the built-in routes (`_routes.py`: page, read
API, control), ingest (`_ingest.py`: decode, validate, store), the SQLite store
(`_store.py`) and fault injection (`_faults.py`). `Collector` owns one of each and
shares no private state with them.

Extension points for feature modules (identity graph, routing, warehouse, usage):
`collector.routes.add(method, path, handler)` adds a route, `collector.routes.add_view(
path, title)` a debugger view (a separate file under static/), and
`collector.add_listener(on_rows)` follows every committed batch, and
`collector.ingest.handler(kind)` ingests on another path (analytics.js's short routes).
A feature module usually offers `register(collector)` doing those calls.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TextIO

from . import _analytics_js, _profiles
from ._access import AccessPolicy
from ._faults import Fault, FaultPlan
from ._http import HttpServer, Request
from ._ingest import MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES, Ingest, Validator, now_iso
from ._routes import RouteTable, register_builtin_routes
from ._store import Listener, Store

__all__ = ["MAX_MESSAGE_BYTES", "MAX_REQUEST_BYTES", "Collector", "Validator"]


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
        analytics_js_dir: where the `@segment/analytics-next` build is (a node_modules,
            the package or its dist/umd) for the collector to serve; None: ./node_modules
            when it has one. See docs/identity.md.
        allowed_origins: browser origins (`"http://localhost:3000"`) that may send
            events (analytics.js), answered with CORS; other origins get 403. `"*"`
            allows every origin (any page you visit could then write events).
        allowed_hosts: `Host` names to answer besides loopback names, IP literals and
            `host` (DNS rebinding protection); `"*"`: any.
        max_connections: connections served at once; past it, new ones get 503.
        idle_timeout: seconds before an idle connection is closed; also how long one
            request may take to arrive from its first byte (then 408: no trickling).

    Raises ValueError for a malformed origin or host name.
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
        analytics_js_dir: str | os.PathLike[str] | None = None,
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        max_connections: int = 256,
        idle_timeout: float = 60.0,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be > 0 seconds, got {idle_timeout}")
        self.policy = AccessPolicy(host, allowed_hosts=allowed_hosts,
                                   allowed_origins=allowed_origins)
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.host = host
        self.port = port
        self.store = Store(db, persist=not discard)
        self.plan = FaultPlan(list(faults), seed)
        self._stopping = threading.Event()
        self.ingest = Ingest(
            self.store, self.plan, self._stopping, write_key=write_key, strict=strict,
            validator=validator, log=log, discard=discard,
        )
        self.routes = RouteTable(self.policy)
        self.routes.on_refusal = self._refused
        register_builtin_routes(self.routes, self)
        self.ingest.register(self.routes)
        # Feature modules (identity graph, analytics.js): their own routes and listeners.
        self.profiles = _profiles.register(self)
        self.browser = _analytics_js.register(self, analytics_js_dir)
        self._server: HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._refused_connections = 0  # by servers already stopped

    # -- configuration (read by ingest on every request) --------------------------------

    @property
    def write_key(self) -> str | None:
        """The required write key (None: any key)."""
        return self.ingest.write_key

    @write_key.setter
    def write_key(self, value: str | None) -> None:
        self.ingest.write_key = value

    @property
    def strict(self) -> bool:
        """Answer 400 to a request with an invalid message."""
        return self.ingest.strict

    @strict.setter
    def strict(self, value: bool) -> None:
        self.ingest.strict = value

    @property
    def validator(self) -> Validator | None:
        """The tracking-plan check run on each valid message."""
        return self.ingest.validator

    @validator.setter
    def validator(self, value: Validator | None) -> None:
        self.ingest.validator = value

    @property
    def log(self) -> TextIO | None:
        """Where the one line per batch goes (None: quiet)."""
        return self.ingest.log

    @property
    def discard(self) -> bool:
        """Count only, store nothing."""
        return self.ingest.discard

    def _refused(self, request: Request, status: int, reason: str) -> None:
        self.ingest.reject(now_iso(), request.path[:200], status, reason)

    def add_listener(
        self, on_rows: Listener, on_clear: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        """Follow ingest: see `Store.add_listener`. Returns the function that removes it."""
        return self.store.add_listener(on_rows, on_clear)

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
        server = HttpServer((self.host, self.port), self.routes,
                            max_connections=self.max_connections,
                            idle_timeout=self.idle_timeout)
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
        self._refused_connections += server.counters()["refused_connections"]
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        server.close_connections(timeout)

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

    # -- reading ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts by type and track event, totals, duplicates, rejections, batches, faults."""
        stats = self.store.stats()
        stats.update(self.ingest.counters())
        server = self._server
        stats["refused_connections"] = self._refused_connections + (
            server.counters()["refused_connections"] if server is not None else 0)
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
        self.ingest.reset_counters()

    # -- faults -------------------------------------------------------------------------

    def set_faults(self, *faults: Fault, seed: int | None = None) -> None:
        """Replace the fault rules (none: no faults) and reseed the generator."""
        self.plan.set(list(faults), seed)

    def faults(self) -> dict[str, Any]:
        """The active rules with their `injected` counters, and the seed."""
        return self.plan.to_dict()

