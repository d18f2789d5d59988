"""The collector's route table and its built-in routes: static page, read API, control.

A route is `(method, path) -> handler(request) -> Response`. Handlers run on the
connection's thread and may raise `HttpError` for a 4xx. `HEAD` is served by the `GET`
handler (the HTTP layer leaves the body out).

Extension points (for feature modules under `collector/`):

- `RouteTable.add(method, path, handler, prefix=False)`: one call registers a GET, POST,
  OPTIONS, ... route; `prefix=True` matches every path under `path`. A module usually
  offers `register(collector)` that adds its routes to `collector.routes`.
- `RouteTable.add_view(path, title)`: a page of the debugger, a separate file under
  `static/` (for instance `static/identity.html` with its own script) served at
  `/static/...`; the debugger's header links every view listed by `GET /v1/views`.

Thread-safety: `add` and `add_view` may be called while serving (a lock guards them);
`dispatch` reads a snapshot.
"""

from __future__ import annotations

import json
import mimetypes
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._faults import Fault
from ._http import HttpError, Request, Response, json_response

if TYPE_CHECKING:
    from ._server import Collector

__all__ = ["STATIC", "Handler", "RouteTable", "int_arg", "register_builtin_routes"]

Handler = Callable[[Request], Response]

STATIC = Path(__file__).parent / "static"
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


class RouteTable:
    """Routes by method and path. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exact: dict[tuple[str, str], Handler] = {}
        self._prefixes: list[tuple[str, str, Handler]] = []
        self._views: list[dict[str, str]] = []

    def add(self, method: str, path: str, handler: Handler, *, prefix: bool = False) -> None:
        """Route `method path` to `handler`; a later route for the same key replaces it.

        `prefix=True`: every path starting with `path` (longest prefix wins).
        """
        method = method.upper()
        if not path.startswith("/"):
            raise ValueError(f"a route path starts with '/', got {path!r}")
        with self._lock:
            if prefix:
                kept = [p for p in self._prefixes if (p[0], p[1]) != (method, path)]
                kept.append((method, path, handler))
                kept.sort(key=lambda p: -len(p[1]))
                self._prefixes = kept
            else:
                exact = dict(self._exact)
                exact[(method, path)] = handler
                self._exact = exact

    def add_view(self, path: str, title: str) -> None:
        """List a debugger view (a page under /static/) in `GET /v1/views`."""
        with self._lock:
            self._views = [v for v in self._views if v["path"] != path]
            self._views.append({"path": path, "title": title})

    def views(self) -> list[dict[str, str]]:
        """The registered views, in registration order."""
        with self._lock:
            return [dict(v) for v in self._views]

    def find(self, method: str, path: str) -> Handler | None:
        """The handler for `method path`, or None."""
        handler = self._exact.get((method, path))
        if handler is not None:
            return handler
        for route_method, route_path, route_handler in self._prefixes:
            if route_method == method and path.startswith(route_path):
                return route_handler
        return None

    def dispatch(self, request: Request) -> Response:
        """Run the handler for `request`: 404 naming the route when there is none."""
        method = "GET" if request.method == "HEAD" else request.method
        # The exact target first: ingest clients send bare paths, no split needed.
        handler = self._exact.get((method, request.target))
        if handler is None:
            handler = self.find(method, request.path)
        if handler is None:
            return json_response(404, {"error": f"no route {request.method} {request.path}"})
        return handler(request)


def int_arg(query: dict[str, str], name: str, default: int | None,
            maximum: int | None = None) -> int | None:
    """A non-negative integer query parameter (capped at `maximum`); HttpError if not."""
    if name not in query:
        return default
    try:
        value = int(query[name])
    except ValueError:
        raise HttpError(400, f"{name} must be an integer, got {query[name]!r}") from None
    if value < 0:
        raise HttpError(400, f"{name} must be >= 0, got {value}")
    return min(value, maximum) if maximum is not None else value


def static_file(name: str) -> Response:
    """A file under static/ (404 for anything outside it or missing)."""
    root = STATIC.resolve()
    target = (root / name).resolve()
    if not name or root not in target.parents or not target.is_file():
        return json_response(404, {"error": f"no static file {name!r}"})
    suffix = target.suffix.lower()
    content_type = _CONTENT_TYPES.get(suffix) or (
        mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    )
    return Response(200, target.read_bytes(), content_type)


def register_builtin_routes(routes: RouteTable, collector: Collector) -> None:
    """The page, the read API (`/v1/events`, `/v1/rejections`, `/v1/stats`, `/v1/faults`,
    `/v1/views`, `/health`) and the control routes (`/v1/clear`, `/v1/faults`)."""
    store = collector.store

    def index(request: Request) -> Response:
        return static_file("index.html")

    def static(request: Request) -> Response:
        return static_file(request.path[len("/static/"):])

    def events(request: Request) -> Response:
        query = request.query()
        rows, last = store.events(
            type=query.get("type") or None,
            event=query.get("event") or None,
            user_id=query.get("user_id") or None,
            q=query.get("q") or None,
            after=int_arg(query, "after", None),
            limit=int_arg(query, "limit", 100, maximum=10_000),
        )
        return json_response(200, {"events": rows, "last_id": last})

    def rejections(request: Request) -> Response:
        query = request.query()
        rows = store.rejections(
            after=int_arg(query, "after", None),
            limit=int_arg(query, "limit", 100, maximum=10_000),
        )
        return json_response(200, {"rejections": rows})

    def clear(request: Request) -> Response:
        request.body()
        collector.clear()
        return json_response(200, {"success": True})

    def set_faults(request: Request) -> Response:
        body = request.body()
        try:
            data: Any = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object {faults: [...], seed: n}")
            faults = [Fault.from_dict(item) for item in data.get("faults") or []]
            seed = data.get("seed")
            collector.set_faults(*faults, seed=None if seed is None else int(seed))
        except (ValueError, TypeError) as exc:
            raise HttpError(400, str(exc)) from None
        return json_response(200, collector.faults())

    def delete_faults(request: Request) -> Response:
        request.body()
        collector.set_faults()
        return json_response(200, collector.faults())

    routes.add("GET", "/", index)
    routes.add("GET", "/index.html", index)
    routes.add("GET", "/static/", static, prefix=True)
    routes.add("GET", "/v1/events", events)
    routes.add("GET", "/v1/rejections", rejections)
    routes.add("GET", "/v1/stats", lambda request: json_response(200, collector.stats()))
    routes.add("GET", "/v1/faults", lambda request: json_response(200, collector.faults()))
    routes.add("GET", "/v1/views", lambda request: json_response(200, routes.views()))
    routes.add("GET", "/health", lambda request: json_response(200, {"ok": True}))
    routes.add("POST", "/v1/clear", clear)
    routes.add("POST", "/v1/faults", set_faults)
    routes.add("DELETE", "/v1/faults", delete_faults)
    routes.add_view("/", "Live events")
