"""analytics.js against the local collector: its settings, its routes, its build.

The browser library (npm `@segment/analytics-next`, its standalone build as Segment's
snippet loads it) first GETs `{cdn}/v1/projects/{writeKey}/settings`; the
`Segment.io` integration there names the host it then posts every call to
(`/v1/t`, `/v1/p`, `/v1/i`, `/v1/g`, `/v1/a`, `/v1/s`, or `/v1/b` when batching), as
`text/plain` with the write key in a Basic `Authorization` header: ingest serves those
routes, with CORS for the allowed origins (`_access.py`). This module serves the
settings, and the build and its chunks from a local `node_modules`, so nothing comes
from Segment's CDN. Thread-safe (nothing here changes after registration).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._http import Request, Response, json_response

if TYPE_CHECKING:
    from ._server import Collector

__all__ = ["BrowserRoutes", "build_asset", "find_build", "register", "settings_for"]

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


_NO_BUILD = (
    "analytics.js is not served: start the collector with --analytics-js-dir DIR "
    "(a node_modules holding @segment/analytics-next), or run it where ./node_modules has it"
)
_SETTINGS = re.compile(r"/v1/projects/([^/]+)/settings")


class BrowserRoutes:
    """analytics.js's routes on one collector: its settings and its build. Thread-safe.

    The one-letter ingest routes are ingest's own (with CORS for the allowed origins,
    see `_access.py`). The settings answer allowed origins with CORS and refuse other
    pages like ingest does; the build is public code, served to any page (a script tag
    sends no Origin).
    """

    def __init__(self, collector: Collector, build: Path | None) -> None:
        self.collector = collector
        self.build = build

    def register(self) -> None:
        routes = self.collector.routes
        routes.add("GET", "/v1/projects/", self.settings, prefix=True, access="page")
        routes.add("GET", "/analytics.js/", self.asset, prefix=True, access="page")
        routes.add("GET", "/analytics-next/bundles/", self.asset, prefix=True, access="page")

    def settings(self, request: Request) -> Response:
        """`GET /v1/projects/{writeKey}/settings`, pointing back at this collector."""
        match = _SETTINGS.fullmatch(request.path)
        if match is None:
            return json_response(404, {"error": f"no route GET {request.path}"})
        headers = request.headers
        origin, host = headers.get("origin"), headers.get("host")
        policy = self.collector.policy
        refusal = policy.refusal("ingest", origin, headers.get("sec-fetch-site"), host)
        if refusal is not None:
            return self.collector.routes.refuse(
                request, 403, refusal.replace("send events", "load analytics.js settings"),
                "forbidden")
        write_key = match.group(1)
        required = self.collector.write_key
        if required is not None and write_key != required:
            return json_response(404, {"error": "unknown write key"})
        api_host = f"{host or urlsplit(self.collector.url).netloc}/v1"
        body = json.dumps(settings_for(write_key, api_host)).encode()
        return Response(200, body, "application/json", policy.cors_headers(origin))

    def asset(self, request: Request) -> Response:
        """The standalone build (the snippet's script URL) and its chunks."""
        if self.build is None:
            return json_response(404, {"error": _NO_BUILD})
        target = build_asset(self.build, request.path)
        if target is None:
            return json_response(404, {"error": f"no analytics.js file at {request.path}"})
        kind = "application/json" if target.suffix == ".map" else "text/javascript; charset=utf-8"
        return Response(200, target.read_bytes(), kind)


def register(collector: Collector,
             build_dir: str | os.PathLike[str] | None = None) -> BrowserRoutes:
    """Serve analytics.js's settings and build on `collector` (`build_dir`: see
    `find_build`). Raises ValueError when `build_dir` is given and holds no build.
    """
    build = find_build(build_dir)
    if build is None and build_dir is not None:
        raise ValueError(
            f"analytics_js_dir {os.fspath(build_dir)!r} holds no @segment/analytics-next "
            "build (dist/umd/standalone.js): give a node_modules, the package or its dist/umd"
        )
    routes = BrowserRoutes(collector, build)
    routes.register()
    return routes
