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

import os
import re
from pathlib import Path
from typing import Any

__all__ = [
    "BROWSER_BATCH_ROUTE",
    "BROWSER_ROUTES",
    "CORS_ALLOWED_HEADERS",
    "build_asset",
    "find_build",
    "settings_for",
]

# analytics.js's one-letter routes, by the message type each carries.
BROWSER_ROUTES = {
    "/v1/t": "track",
    "/v1/p": "page",
    "/v1/i": "identify",
    "/v1/g": "group",
    "/v1/a": "alias",
    "/v1/s": "screen",
}
BROWSER_BATCH_ROUTE = "/v1/b"
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
