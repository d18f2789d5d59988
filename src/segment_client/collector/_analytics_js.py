"""analytics.js against the local collector: its settings, its routes, its build.

The browser library (npm `@segment/analytics-next`, its standalone build as Segment's
snippet loads it) first GETs `{cdn}/v1/projects/{writeKey}/settings`; the
`Segment.io` integration there names the host it then posts every call to
(`/v1/t`, `/v1/p`, `/v1/i`, `/v1/g`, `/v1/a`, `/v1/s`, or `/v1/b` when batching), as
`text/plain` with the write key in a Basic `Authorization` header. The collector
serves the build and its chunks from a local `node_modules`, so nothing comes from
Segment's CDN. Pure functions and immutable data; thread-safe.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._http import Request, Response, json_response
from ._ingest import INGEST_PATHS
from ._routes import Handler

if TYPE_CHECKING:
    from ._server import Collector

__all__ = [
    "BROWSER_INGEST_PATHS",
    "CORS_ALLOWED_HEADERS",
    "BrowserRoutes",
    "build_asset",
    "find_build",
    "register",
    "settings_for",
]

# analytics.js's one-letter routes (ingest serves them as /v1/track, ...; /v1/b is a
# batch).
BROWSER_INGEST_PATHS = ("/v1/t", "/v1/p", "/v1/i", "/v1/g", "/v1/a", "/v1/s", "/v1/b")
# The request headers analytics.js sends (a preflight asks for them).
CORS_ALLOWED_HEADERS = ("authorization", "content-type", "x-retry-count")

_PACKAGE = Path("@segment") / "analytics-next"
_UMD = Path("dist") / "umd"
# The snippet's script URL (v1 or v2), the build's own name, and the chunks webpack
# loads from `{cdn}/analytics-next/bundles/`.
_SCRIPT = re.compile(r"/analytics\.js/v[12]/[^/]+/analytics(?:\.min)?\.js")
_CHUNK = re.compile(r"/analytics-next/bundles/([A-Za-z0-9_.-]+\.js(?:\.map)?)")


def find_build(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The directory holding `standalone.js` of analytics-next, or None.

    `path` may be a `node_modules` directory, the package's own directory, or its
    `dist/umd`; without it, `./node_modules` (the current directory's) is tried.
    """
    root = Path.cwd() / "node_modules" if path is None else Path(path)
    for candidate in (root, root / _UMD, root / _PACKAGE / _UMD,
                      root / "node_modules" / _PACKAGE / _UMD):
        if (candidate / "standalone.js").is_file():
            return candidate.resolve()
    return None


def build_asset(build: Path, path: str) -> Path | None:
    """The file of the build that URL path `path` names, or None.

    The snippet's `/analytics.js/v1|v2/{key}/analytics.min.js` is `standalone.js`;
    `/analytics-next/bundles/{name}` is one of its chunks. Nothing outside `build`.
    """
    if _SCRIPT.fullmatch(path):
        return build / "standalone.js"
    match = _CHUNK.fullmatch(path)
    if match is None or match.group(1).startswith("."):
        return None
    target = build / match.group(1)
    return target if target.is_file() else None


def settings_for(write_key: str, api_host: str, protocol: str = "http") -> dict[str, Any]:
    """A complete settings object as Segment's CDN serves it, pointing at the collector.

    `api_host` is `host:port/v1` of the collector. Every top-level field the browser
    library reads is present (a settings object with the integration alone loses the
    snippet's buffered calls); no destination is enabled, metrics are off, no remote
    plugin or edge function is loaded: the page makes no request but to the collector.
    """
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
                "versionSettings": {"version": "4.4.7", "componentTypes": ["browser"]},
            },
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0, "host": api_host},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
        "consentSettings": {"allCategories": [], "hasUnmappedDestinations": False},
        "autoInstrumentationSettings": {"sampleRate": 0},
    }


def normalize_origin(origin: str) -> str:
    """`scheme://host[:port]` in lower case, as browsers send `Origin`; ValueError if not."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"an origin is scheme://host[:port], got {origin!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


_NO_BUILD = (
    "analytics.js is not served: start the collector with --analytics-js-dir DIR "
    "(a node_modules holding @segment/analytics-next), or run it where ./node_modules has it"
)
_SETTINGS = re.compile(r"/v1/projects/([^/]+)/settings")
_PREFLIGHT_METHODS = "POST, GET, OPTIONS"


class BrowserRoutes:
    """analytics.js's routes on one collector: settings, the build, CORS. Thread-safe.

    `allowed_origins`: the page origins that may send events and read settings (the
    collector's own origin always may); every other origin gets 403, and its attempt is
    recorded as a rejection.
    """

    def __init__(self, collector: Collector, build: Path | None,
                 allowed_origins: Iterable[str] = ()) -> None:
        self.collector = collector
        self.build = build
        self.allowed_origins = frozenset(normalize_origin(o) for o in allowed_origins)

    def register(self) -> None:
        routes = self.collector.routes
        routes.add("GET", "/v1/projects/", self.settings, prefix=True)
        routes.add("OPTIONS", "/v1/projects/", self.preflight, prefix=True)
        routes.add("GET", "/analytics.js/", self.asset, prefix=True)
        routes.add("GET", "/analytics-next/bundles/", self.asset, prefix=True)
        for path in INGEST_PATHS:
            ingest = routes.find("POST", path)
            if ingest is not None:
                routes.add("POST", path, self._cors(ingest))
            routes.add("OPTIONS", path, self.preflight)

    # -- origins --------------------------------------------------------------------------

    def origin_allowed(self, request: Request) -> bool | None:
        """True: an allowed cross-origin page; None: no Origin or the collector's own;
        False: a page on another origin."""
        origin = request.headers.get("Origin")
        if not origin:
            return None
        try:
            normalized = normalize_origin(origin)
        except ValueError:
            return False
        host = str(request.headers.get("Host", "")).lower()
        if host and normalized in (f"http://{host}", f"https://{host}"):
            return None
        return normalized in self.allowed_origins

    def _refuse(self, request: Request, what: str) -> Response:
        origin = request.headers.get("Origin")
        reason = (f"origin {origin!r} may not {what}: allow it with "
                  f"--allow-origin {origin} (or Collector(allowed_origins=[...]))")
        received = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        self.collector.ingest.reject(received.replace("+00:00", "Z"), request.path, 403, reason)
        return json_response(403, {"success": False, "code": "origin_not_allowed",
                                   "message": reason})

    @staticmethod
    def _cors_headers(request: Request) -> list[tuple[str, str]]:
        return [("Access-Control-Allow-Origin", str(request.headers.get("Origin"))),
                ("Vary", "Origin")]

    def _cors(self, handler: Handler) -> Handler:
        def cors(request: Request) -> Response:
            allowed = self.origin_allowed(request)
            if allowed is False:
                request.body()  # read it: the connection stays usable
                return self._refuse(request, "send events")
            response = handler(request)
            if allowed:
                response.headers = [*response.headers, *self._cors_headers(request)]
            return response

        return cors

    def preflight(self, request: Request) -> Response:
        """`OPTIONS`: allowed origins may POST with analytics.js's headers."""
        allowed = self.origin_allowed(request)
        if allowed is False:
            return self._refuse(request, "send events (preflight)")
        wanted = {h.strip().lower() for h in
                  str(request.headers.get("Access-Control-Request-Headers", "")).split(",")
                  if h.strip()}
        extra = wanted - set(CORS_ALLOWED_HEADERS)
        if extra:
            return json_response(403, {"error": f"request headers not allowed: "
                                                f"{', '.join(sorted(extra))}"})
        headers = [
            ("Access-Control-Allow-Methods", _PREFLIGHT_METHODS),
            ("Access-Control-Allow-Headers", ", ".join(CORS_ALLOWED_HEADERS)),
            ("Access-Control-Max-Age", "600"),
        ]
        if allowed:
            headers += self._cors_headers(request)
        return Response(204, b"", "text/plain", headers)

    # -- settings and the build ---------------------------------------------------------

    def settings(self, request: Request) -> Response:
        """`GET /v1/projects/{writeKey}/settings`, pointing back at this collector."""
        match = _SETTINGS.fullmatch(request.path)
        if match is None:
            return json_response(404, {"error": f"no route GET {request.path}"})
        allowed = self.origin_allowed(request)
        if allowed is False:
            return self._refuse(request, "load analytics.js settings")
        write_key = match.group(1)
        required = self.collector.write_key
        if required is not None and write_key != required:
            return json_response(404, {"error": "unknown write key"})
        host = str(request.headers.get("Host") or urlsplit(self.collector.url).netloc)
        body = json.dumps(settings_for(write_key, f"{host}/v1")).encode()
        return Response(200, body, "application/json",
                        self._cors_headers(request) if allowed else [])

    def asset(self, request: Request) -> Response:
        """The standalone build (the snippet's script URL) and its chunks."""
        if self.build is None:
            return json_response(404, {"error": _NO_BUILD})
        target = build_asset(self.build, request.path)
        if target is None:
            return json_response(404, {"error": f"no analytics.js file at {request.path}"})
        kind = "application/json" if target.suffix == ".map" else "text/javascript; charset=utf-8"
        return Response(200, target.read_bytes(), kind)


def register(collector: Collector, build_dir: str | os.PathLike[str] | None = None,
             allowed_origins: Iterable[str] = ()) -> BrowserRoutes:
    """Serve analytics.js's routes on `collector` (`build_dir`: see `find_build`).

    Raises ValueError when `build_dir` is given and holds no standalone build.
    """
    build = find_build(build_dir)
    if build is None and build_dir is not None:
        raise ValueError(
            f"analytics_js_dir {os.fspath(build_dir)!r} holds no @segment/analytics-next "
            "build (dist/umd/standalone.js): give a node_modules, the package or its dist/umd"
        )
    routes = BrowserRoutes(collector, build, allowed_origins)
    routes.register()
    return routes
