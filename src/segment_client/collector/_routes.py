"""The collector's route table and its built-in routes: static page, read API, control.

A route is `(method, path) -> handler(request) -> Response`. Handlers run on the
connection's thread and may raise `HttpError` for a 4xx (answered, and recorded as a
rejection); any other exception is answered 500 and logged. `HEAD` is served by the
`GET` handler (the HTTP layer leaves the body out).

Before a handler runs, the table applies the `AccessPolicy` (see `_access.py`): the
Host allow-list on every request, then the route's `access`: `"local"` (the default:
read and control routes; refuses cross-site browser requests), `"ingest"` (browser
requests only from allowed origins, with CORS: `OPTIONS` preflights are answered for
every ingest route without registering anything) or `"page"` (Host check only).

Extension points (for feature modules under `collector/`):

- `RouteTable.add(method, path, handler, prefix=False, access="local")`: one call
  registers a GET, POST, OPTIONS, ... route; `prefix=True` matches every path under
  `path`. A module usually offers `register(collector)` that adds its routes to
  `collector.routes`. A new read route needs nothing more to be protected.
- `RouteTable.add_view(path, title)`: a page of the debugger, a separate file under
  `static/` (for instance `static/identity.html` with its own script) served at
  `/static/...`; the debugger's header links every view listed by `GET /v1/views`.

Thread-safety: `add` and `add_view` may be called while serving (a lock guards them);
`dispatch` reads a snapshot.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._access import Access, AccessPolicy
from ._faults import Fault
from ._http import HttpError, Request, Response, json_response

if TYPE_CHECKING:
    from ._server import Collector

__all__ = ["STATIC", "Handler", "RefusalHook", "RouteTable", "int_arg",
           "register_builtin_routes", "static_file"]

Handler = Callable[[Request], Response]
# Called for every refused request: (request, status, reason).
RefusalHook = Callable[[Request, int, str], None]

logger = logging.getLogger("segment_client.collector")
# The largest id SQLite holds: a larger `after=` would overflow its integer.
_MAX_ID = 2**63 - 1

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
# The page never runs inside another site's frame (clickjacking the Clear button).
_PAGE_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
)


class RouteTable:
    """Routes by method and path. Thread-safe."""

    def __init__(self, policy: AccessPolicy | None = None) -> None:
        self.policy = policy or AccessPolicy()
        self.on_refusal: RefusalHook | None = None
        self._lock = threading.Lock()
        self._exact: dict[tuple[str, str], _Route] = {}
        self._prefixes: list[tuple[str, str, _Route]] = []
        self._views: list[dict[str, str]] = []

    def add(self, method: str, path: str, handler: Handler, *, prefix: bool = False,
            access: Access = "local") -> None:
        """Route `method path` to `handler`; a later route for the same key replaces it.

        `prefix=True`: every path starting with `path` (longest prefix wins). `access`:
        who may call it (see the module docstring).
        """
        method = method.upper()
        if not path.startswith("/"):
            raise ValueError(f"a route path starts with '/', got {path!r}")
        if access not in ("page", "local", "ingest"):
            raise ValueError(f"access is 'page', 'local' or 'ingest', got {access!r}")
        route = _Route(handler, access)
        with self._lock:
            if prefix:
                kept = [p for p in self._prefixes if (p[0], p[1]) != (method, path)]
                kept.append((method, path, route))
                kept.sort(key=lambda p: -len(p[1]))
                self._prefixes = kept
            else:
                exact = dict(self._exact)
                exact[(method, path)] = route
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

    def find(self, method: str, path: str) -> _Route | None:
        """The route for `method path`, or None."""
        route = self._exact.get((method, path))
        if route is not None:
            return route
        for route_method, route_path, prefix_route in self._prefixes:
            if route_method == method and path.startswith(route_path):
                return prefix_route
        return None

    def dispatch(self, request: Request) -> Response:
        """Check and run the route for `request`: 404 naming it when there is none."""
        try:
            return self._dispatch(request)
        except HttpError as exc:
            return self.refuse(request, exc.status, exc.reason, exc.code, record=exc.record)
        except Exception as exc:
            logger.exception("collector: %s %s failed", request.method, request.path)
            return self.refuse(request, 500, f"internal error: {type(exc).__name__}: {exc}",
                               "internal_error")

    def _dispatch(self, request: Request) -> Response:
        headers = request.headers
        host = headers.get("host")
        refusal = self.policy.host_refusal(host)
        if refusal is not None:
            return self.refuse(request, 403, refusal, "host_not_allowed")
        method = "GET" if request.method == "HEAD" else request.method
        # The exact target first: ingest clients send bare paths, no split needed.
        route = self._exact.get((method, request.target))
        if route is None:
            route = self.find(method, request.path)
        origin = headers.get("origin")
        if route is None and method == "OPTIONS":
            return self._preflight(request, origin)
        if route is None:
            return json_response(404, {"error": f"no route {request.method} {request.path}"})
        if route.access == "page":
            return route.handler(request)
        fetch_site = headers.get("sec-fetch-site")
        refusal = self.policy.refusal(route.access, origin, fetch_site, host)
        if refusal is not None:
            return self.refuse(request, 403, refusal, "forbidden")
        if route.access != "ingest":
            return route.handler(request)
        refusal = self.policy.content_type_refusal(
            headers.get("content-type"), origin, fetch_site)
        if refusal is not None:
            return self.refuse(request, 415, refusal, "unsupported_media_type")
        response = route.handler(request)
        if origin is not None:
            response.headers.extend(self.policy.cors_headers(origin))
        return response

    def _preflight(self, request: Request, origin: str | None) -> Response:
        wanted = request.headers.get("access-control-request-method", "").upper()
        route = self.find(wanted or "POST", request.path)
        if route is None or route.access != "ingest":
            return json_response(404, {"error": f"no route OPTIONS {request.path}"})
        private = request.headers.get("access-control-request-private-network", "") == "true"
        headers = self.policy.preflight_headers(origin, private)
        if headers is None:
            return self.refuse(request, 403, f"CORS preflight from {origin} refused: start "
                               f"the collector with --allow-origin {origin}", "forbidden")
        return Response(204, b"", headers=headers)

    def refuse(self, request: Request, status: int, reason: str, code: str, *,
               record: bool = True) -> Response:
        """Answer a refused request with JSON naming why, and record it."""
        if record and self.on_refusal is not None:
            try:
                self.on_refusal(request, status, reason)
            except Exception:
                logger.exception("collector: could not record a refused request")
        body = json.dumps({"success": False, "code": code, "message": reason,
                           "error": reason}).encode()
        return Response(status, body)


class _Route:
    __slots__ = ("access", "handler")

    def __init__(self, handler: Handler, access: Access) -> None:
        self.handler = handler
        self.access = access


def int_arg(query: dict[str, str], name: str, default: int | None,
            maximum: int | None = None) -> int | None:
    """A non-negative integer query parameter (capped at `maximum`); HttpError if not."""
    if name not in query:
        return default
    try:
        value = int(query[name])
    except ValueError:
        raise HttpError(400, f"{name} must be an integer, got {query[name][:40]!r}",
                        record=False) from None
    if value < 0:
        raise HttpError(400, f"{name} must be >= 0, got {value}", record=False)
    if value > _MAX_ID:
        raise HttpError(400, f"{name} must be at most {_MAX_ID}, got {value}", record=False)
    return min(value, maximum) if maximum is not None else value


def static_file(name: str) -> Response:
    """A file under static/ (404 for anything outside it or missing)."""
    missing = json_response(404, {"error": f"no static file {name[:200]!r}"})
    if not name or len(name) > 255 or "\x00" in name:
        return missing
    root = STATIC.resolve()
    try:
        target = (root / name).resolve()
        if root not in target.parents or not target.is_file():
            return missing
    except (OSError, ValueError):
        return missing
    suffix = target.suffix.lower()
    content_type = _CONTENT_TYPES.get(suffix) or (
        mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    )
    return Response(200, target.read_bytes(), content_type, list(_PAGE_HEADERS))


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

    routes.add("GET", "/", index, access="page")
    routes.add("GET", "/index.html", index, access="page")
    routes.add("GET", "/static/", static, prefix=True, access="page")
    routes.add("GET", "/v1/events", events)
    routes.add("GET", "/v1/rejections", rejections)
    routes.add("GET", "/v1/stats", lambda request: json_response(200, collector.stats()))
    routes.add("GET", "/v1/faults", lambda request: json_response(200, collector.faults()))
    routes.add("GET", "/v1/views", lambda request: json_response(200, routes.views()))
    routes.add("GET", "/health", lambda request: json_response(200, {"ok": True}),
               access="page")
    routes.add("POST", "/v1/clear", clear)
    routes.add("POST", "/v1/faults", set_faults)
    routes.add("DELETE", "/v1/faults", delete_faults)
    routes.add_view("/", "Live events")
