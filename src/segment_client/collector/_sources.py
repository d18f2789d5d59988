"""Which library sent a message, from its `context.library`: the source of each event.

Kinds: `browser` (analytics.js, analytics-next), `segment-client` (this project),
`server` (Segment's other server libraries), `mobile`, `other` (a named library this
module does not know) and `unknown` (no `context.library`). Pure functions; thread-safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from segment_client._messages import LIBRARY_NAME

__all__ = ["SOURCE_KINDS", "Source", "source_of"]

SOURCE_KINDS = ("browser", "segment-client", "server", "mobile", "other", "unknown")

_BROWSER = {"analytics.js", "analytics-next", "@segment/analytics-next"}
_SERVER = {
    "analytics-python", "@segment/analytics-node", "analytics-node", "analytics-ruby",
    "analytics-go", "analytics-java", "analytics-php", "analytics.net", "analytics-csharp",
    "analytics-rust", "analytics-clojure", "analytics-elixir",
}
_MOBILE = {
    "analytics-ios", "analytics-android", "analytics-kotlin", "analytics-swift",
    "analytics-react-native", "analytics-flutter", "analytics-unity", "analytics-xamarin",
}


@dataclass(frozen=True)
class Source:
    """A message's source: its kind, and the library's name and version as sent."""

    kind: str
    library: str | None
    version: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "library": self.library, "version": self.version}


def source_of(message: Mapping[str, Any]) -> Source:
    """The source of one message (never raises, whatever the message holds)."""
    context = message.get("context")
    library = context.get("library") if isinstance(context, dict) else None
    if not isinstance(library, dict) or not isinstance(library.get("name"), str):
        return Source("unknown", None, None)
    version = library.get("version")
    return _source(library["name"], version if isinstance(version, str) else None)


@lru_cache(maxsize=512)
def _source(name: str, version: str | None) -> Source:
    key = name.strip().lower()
    if key in _BROWSER:
        kind = "browser"
    elif key == LIBRARY_NAME:
        kind = "segment-client"
    elif key in _SERVER:
        kind = "server"
    elif key in _MOBILE:
        kind = "mobile"
    else:
        kind = "other"
    return Source(kind, name, version)
