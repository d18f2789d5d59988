"""A process-wide check on outbound requests, set by the pytest plugin.

The HTTP transport asks `refusal(url)` before every attempt; a text means the request
must not be made (it fails as a `TransportError` with that text). Nothing is refused
unless a guard is installed. Thread-safe: the guard is one reference, replaced whole.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["refusal", "set_guard"]

Guard = Callable[[str], "str | None"]

_guard: Guard | None = None


def set_guard(guard: Guard | None) -> Guard | None:
    """Install `guard(url) -> refusal text or None` (None removes it); returns the old one."""
    global _guard
    old, _guard = _guard, guard
    return old


def refusal(url: str) -> str | None:
    """Why a request to `url` must not be made now, or None when it may."""
    guard = _guard
    return None if guard is None else guard(url)
