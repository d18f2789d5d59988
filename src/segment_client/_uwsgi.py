"""Detecting uWSGI workers in which Python threads never run.

uWSGI without `--enable-threads` (or `--threads`) does not initialise the GIL for
application threads: a thread can be started but never gets to run, so a background
consumer would hold messages forever. The consumer asks `threads_unavailable()` before
starting its thread and, when it answers True, sends from the caller's side instead.

`threads_unavailable` is the seam: tests monkeypatch it.
"""

from __future__ import annotations

import importlib

__all__ = ["threads_unavailable"]


def _enabled(value: object) -> bool:
    if isinstance(value, list | tuple):
        return any(_enabled(v) for v in value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def threads_unavailable() -> bool:
    """True inside a uWSGI worker started without `--enable-threads` or `--threads`."""
    try:
        # A built-in module of the uWSGI process; absent everywhere else.
        uwsgi = importlib.import_module("uwsgi")
    except ImportError:
        return False
    opt = getattr(uwsgi, "opt", None)
    if not isinstance(opt, dict):
        return False
    return not (_enabled(opt.get("enable-threads")) or _enabled(opt.get("threads")))
