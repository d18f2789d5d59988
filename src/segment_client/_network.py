"""Network configuration: regions, host typo detection, proxies and TLS options.

Pure functions used by `Client(...)` while it validates its arguments; nothing here
does I/O except checking that certificate files named by the caller exist.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ._exceptions import ConfigurationError

__all__ = [
    "EU_HOST",
    "REGIONS",
    "US_HOST",
    "check_host_typo",
    "oauth_server_for",
    "resolve_host",
    "session_options",
]

logger = logging.getLogger("segment_client")

US_HOST = "https://api.segment.io"
EU_HOST = "https://events.eu1.segmentapis.com"
US_OAUTH = "https://oauth2.segment.io"
EU_OAUTH = "https://oauth2.eu1.segmentapis.com"

#: region name -> (Tracking API host, OAuth authorization server). Tokens are
#: region-specific: an EU workspace needs both EU URLs.
REGIONS: dict[str, tuple[str, str]] = {
    "us": (US_HOST, US_OAUTH),
    "eu": (EU_HOST, EU_OAUTH),
}

_KNOWN_HOSTNAMES = frozenset(
    urlsplit(url).hostname or "" for pair in REGIONS.values() for url in pair
)
# A hostname this close (edit distance) to a Segment host, but not equal, is most
# likely a typo: data sent there is lost, or silently discarded by the wrong region.
_TYPO_DISTANCE = 3


def resolve_host(host: str | None, region: str | None) -> str | None:
    """The host named by `region` ("us"/"eu"), or `host` unchanged when no region."""
    if region is None:
        return host
    if not isinstance(region, str) or region.lower() not in REGIONS:
        raise ConfigurationError(
            f"region must be one of {sorted(REGIONS)}, got {region!r}"
        )
    region_host = REGIONS[region.lower()][0]
    if host is not None and host.rstrip("/") != region_host:
        raise ConfigurationError(
            f"pass either host= or region=, not both (region {region!r} means {region_host!r})"
        )
    return region_host


def oauth_server_for(host: str) -> str:
    """The OAuth authorization server matching the Tracking API `host`'s region."""
    return EU_OAUTH if urlsplit(host).hostname == urlsplit(EU_HOST).hostname else US_OAUTH


def check_host_typo(host: str) -> str | None:
    """Log a warning and return the known host when `host` looks like a typo of one."""
    hostname = (urlsplit(host).hostname or "").lower()
    if not hostname or hostname in _KNOWN_HOSTNAMES:
        return None
    for known in sorted(_KNOWN_HOSTNAMES):
        if abs(len(known) - len(hostname)) <= _TYPO_DISTANCE and (
            _distance(hostname, known) <= _TYPO_DISTANCE
        ):
            logger.warning(
                "host %r looks like a typo of Segment's %r; "
                "messages sent there will not reach Segment",
                hostname, known,
            )
            return known
    return None


def _distance(a: str, b: str) -> int:
    """Levenshtein edit distance (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def session_options(
    proxies: Mapping[str, str] | None,
    verify: bool | str | None,
    cert: str | tuple[str, str] | None,
) -> dict[str, Any]:
    """Validate `proxies=`, `verify=` and `cert=` and return them for `requests`.

    Only options the caller gave are returned, so requests' defaults (and its reading
    of `HTTPS_PROXY`, `NO_PROXY`, `REQUESTS_CA_BUNDLE` when `trust_env`) stay in force.
    """
    options: dict[str, Any] = {}
    if proxies is not None:
        if not isinstance(proxies, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in proxies.items()
        ):
            raise ConfigurationError(
                "proxies must map a scheme to a proxy URL, such as "
                "{'https': 'http://proxy.internal:3128'}"
            )
        options["proxies"] = dict(proxies)
    if verify is not None:
        if isinstance(verify, str):
            if not os.path.exists(verify):
                raise ConfigurationError(
                    f"verify must be True, False or the path of a CA bundle; "
                    f"{verify!r} does not exist"
                )
        elif not isinstance(verify, bool):
            raise ConfigurationError(
                f"verify must be True, False or the path of a CA bundle, got {verify!r}"
            )
        options["verify"] = verify
    if cert is not None:
        paths = (cert,) if isinstance(cert, str) else cert
        if not isinstance(paths, tuple) or not 1 <= len(paths) <= 2 or not all(
            isinstance(p, str) for p in paths
        ):
            raise ConfigurationError(
                "cert must be the path of a PEM file holding the client certificate and "
                "key, or a (certificate path, key path) tuple"
            )
        for path in paths:
            if not os.path.exists(path):
                raise ConfigurationError(f"cert: the file {path!r} does not exist")
        options["cert"] = cert
    return options

