"""Who may talk to the collector: the Host allow-list, cross-site checks and CORS.

The collector listens on a developer's machine, where any web page the developer opens
can send requests to it. Three checks, applied by the route table before a handler:

- **Host** (every route): the `Host` header must name this machine: an IP literal,
  `localhost` (or a `*.localhost` name), the address the collector is bound to, or a
  name given with `allowed_hosts` / `--allow-host`. A page whose own hostname was
  rebound to 127.0.0.1 (DNS rebinding) sends its own name and is refused. IP literals
  are always safe: rebinding needs a name the attacker's DNS answers for.
- **Cross-site** (`access="local"`: the read API and the control routes): a browser
  request must come from the collector's own origin (`Sec-Fetch-Site: same-origin` or
  `none`, and an `Origin`, when sent, equal to the collector's). Requests without those
  headers come from programs (curl, clients, tests) and pass.
- **Browser ingest** (`access="ingest"`): a browser request from another origin is
  accepted only from `allowed_origins` / `--allow-origin`; preflights (`OPTIONS`) and
  answers for those origins carry CORS headers, for exactly those origins.

`access="page"` routes (the debugger page and its files) only get the Host check: a link
from anywhere may open the page, and the page refuses to be framed.

Thread-safety: immutable after construction.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["Access", "AccessPolicy", "normalize_origin"]

Access = Literal["page", "local", "ingest"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
# Request headers a browser may send to ingest routes after a preflight.
_CORS_HEADERS = "Content-Type, Authorization, Content-Encoding, X-Retry-Count"
_BROWSER_CONTENT_TYPES = ("application/json", "text/plain")


def normalize_origin(origin: str) -> str:
    """`scheme://host[:port]` lower-cased, default port dropped; ValueError if not one."""
    text = origin.strip()
    if text == "*":
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an allowed origin is scheme://host[:port], got {origin!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"an allowed origin has no path, query or user, got {origin!r}")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in allowed origin {origin!r}") from None
    default = 80 if parts.scheme == "http" else 443
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def _host_name(host_header: str) -> str:
    """The name part of a Host header (no port, no brackets), lower-cased."""
    text = host_header.strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    name, _, _ = text.partition(":") if text.count(":") == 1 else (text, "", "")
    return name.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AccessPolicy:
    """The Host allow-list and the origins allowed to send events from a browser.

    Args:
        bound_host: the address the collector listens on (allowed as a Host).
        allowed_hosts: more Host names to answer (`"*"`: any; for a collector reached
            by a container or LAN name).
        allowed_origins: browser origins (`http://localhost:3000`) that may send events
            to the ingest routes, with CORS (`"*"`: any origin, which lets every web
            page you visit write events into the collector).
    """

    def __init__(
        self,
        bound_host: str = "127.0.0.1",
        *,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
    ) -> None:
        hosts = set()
        for host in allowed_hosts:
            if not isinstance(host, str) or not host.strip():
                raise ValueError(f"an allowed host is a non-empty name, got {host!r}")
            hosts.add(host.strip().lower().rstrip("."))
        self.allowed_hosts = frozenset(hosts)
        self.bound_host = _host_name(bound_host) if bound_host else ""
        self.allowed_origins = frozenset(normalize_origin(o) for o in allowed_origins)

    # -- Host -----------------------------------------------------------------------------

    def host_refusal(self, host_header: str | None) -> str | None:
        """Why a request with this Host header is refused (None: it is not)."""
        if host_header is None or "*" in self.allowed_hosts:
            return None  # HTTP/1.0 programs send none; browsers always do
        name = _host_name(host_header)
        if (
            name in _LOOPBACK_NAMES
            or name.endswith(".localhost")
            or name == self.bound_host
            or name in self.allowed_hosts
            or _is_ip(name)
        ):
            return None
        return (f"Host {host_header!r} is not this collector's (DNS rebinding protection); "
                f"to answer it, start the collector with --allow-host {name}")

    # -- origins --------------------------------------------------------------------------

    def origin_allowed(self, origin: str) -> bool:
        """True when `origin` may send events from a browser."""
        if "*" in self.allowed_origins:
            return True
        try:
            return normalize_origin(origin) in self.allowed_origins
        except ValueError:
            return origin.strip() in self.allowed_origins  # "null" only when listed

    @staticmethod
    def same_origin(origin: str, host_header: str | None) -> bool:
        """True when `origin` is the collector's own (http://{Host})."""
        if host_header is None:
            return False
        try:
            return normalize_origin(origin) == normalize_origin(f"http://{host_header}")
        except ValueError:
            return False

    def refusal(
        self, access: Access, origin: str | None, fetch_site: str | None,
        host_header: str | None,
    ) -> str | None:
        """Why a request to a route with `access` is refused (None: allowed)."""
        if access == "page":
            return None
        own = origin is not None and self.same_origin(origin, host_header)
        if origin is not None and not own:
            if access == "ingest" and self.origin_allowed(origin):
                return None
            if access == "ingest":
                return (f"browser requests from {origin} may not send events; start the "
                        f"collector with --allow-origin {origin} to allow them")
            return f"cross-site request from {origin} refused (CSRF protection)"
        site = (fetch_site or "").lower()
        if site not in ("", "same-origin", "none") and not own:
            return f"cross-site request (Sec-Fetch-Site: {site}) refused (CSRF protection)"
        return None

    def content_type_refusal(self, content_type: str | None, origin: str | None,
                             fetch_site: str | None) -> str | None:
        """Browser ingest sends JSON or text/plain (analytics.js); anything else from a
        browser (a form post) is refused. Programs may send any type."""
        if origin is None and not fetch_site:
            return None
        kind = (content_type or "").split(";")[0].strip().lower()
        if not kind or kind in _BROWSER_CONTENT_TYPES or kind.endswith("+json"):
            return None
        return (f"Content-Type {content_type!r} refused from a browser: send "
                "application/json or text/plain")

    def cors_headers(self, origin: str | None) -> list[tuple[str, str]]:
        """The CORS headers for an answer to `origin` (none when it is not allowed)."""
        if origin is None or not self.origin_allowed(origin):
            return []
        return [("Access-Control-Allow-Origin", origin.strip()), ("Vary", "Origin")]

    def preflight_headers(self, origin: str | None,
                          private_network: bool) -> list[tuple[str, str]] | None:
        """The answer headers to a CORS preflight, or None when `origin` is not allowed."""
        headers = self.cors_headers(origin)
        if not headers:
            return None
        headers += [
            ("Access-Control-Allow-Methods", "POST, OPTIONS"),
            ("Access-Control-Allow-Headers", _CORS_HEADERS),
            ("Access-Control-Max-Age", "600"),
        ]
        if private_network:
            # Chrome asks before a public page reaches a loopback address.
            headers.append(("Access-Control-Allow-Private-Network", "true"))
        return headers
