"""Pieces shared by every integration: the missing-extra error, the checks of settings
at startup and the lazy per-process client."""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from segment_client import Client, ConfigurationError, MissingDependencyError

__all__ = [
    "LazyClient",
    "check_bool",
    "check_client_options",
    "check_seconds",
    "logger",
    "missing_dependency",
]

logger = logging.getLogger("segment_client")


def missing_dependency(integration: str, extra: str, exc: ImportError) -> MissingDependencyError:
    """The error raised when `integration` is imported without its framework."""
    return MissingDependencyError(
        f"segment_client.integrations.{integration} needs {exc.name or extra!s}, which is not "
        f"installed: pip install 'segment-client[{extra}]'"
    )


# What a settings check passes as the key when none is configured: a missing key is
# reported when the client is first used (Client falls back to $SEGMENT_WRITE_KEY then),
# so an app without one still starts (tests, local runs).
_PLACEHOLDER_KEY = "startup-check"


def _client_parameters() -> dict[str, inspect.Parameter]:
    parameters = dict(inspect.signature(Client).parameters)
    parameters.pop("write_key", None)
    return parameters


def check_client_options(
    write_key: object, host: object, options: Mapping[str, Any], where: str
) -> None:
    """Check `Client(write_key, host=host, **options)` without building anything.

    Raises `ConfigurationError` naming the key in `where` (e.g. "SEGMENT['OPTIONS']"):
    an unknown option, or a value the Client would refuse. No client, thread, file or
    socket is made, so a server that forks after startup is unaffected.
    """
    parameters = _client_parameters()
    for name in options:
        if not isinstance(name, str) or name not in parameters or name == "host":
            expected = ", ".join(sorted(set(parameters) - {"host"}))
            raise ConfigurationError(
                f"{where}: {name!r} is not a Client option; expected some of: {expected}"
            )
    if write_key is not None and (not isinstance(write_key, str) or not write_key):
        raise ConfigurationError(
            f"the write key must be a non-empty string, got {type(write_key).__name__}"
        )
    bound = {name: p.default for name, p in parameters.items()}
    bound.update(options)
    bound["host"] = host
    key = write_key or os.environ.get("SEGMENT_WRITE_KEY") or _PLACEHOLDER_KEY
    try:
        _validate(key, bound)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def _validate(write_key: str, arguments: dict[str, Any]) -> None:
    """Run the checks `Client()` runs on its arguments before it builds anything.

    The one place an integration uses private modules: the checks are the Client's
    own, so an option is accepted here exactly when `Client()` would accept it.
    """
    from segment_client._config import check_options
    from segment_client._plan import PlanEnforcer

    policies = ("on_violation", "on_unplanned", "on_plan_violation")
    config = check_options(write_key, **{k: v for k, v in arguments.items() if k not in policies})
    if config.tracking_plan is not None:  # the plan's policies: checked, nothing kept
        PlanEnforcer(
            config.tracking_plan, on_violation=arguments["on_violation"],
            on_unplanned=arguments["on_unplanned"], handler=arguments["on_plan_violation"],
            drop=lambda reason, error, messages: None,
        )


def check_seconds(name: str, value: object, *, optional: bool = False) -> None:
    """`value` must be seconds >= 0 (or None when `optional`); ConfigurationError naming it."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        expected = "None or seconds >= 0" if optional else "seconds >= 0"
        raise ConfigurationError(f"{name} must be {expected}, got {value!r}")


def check_bool(name: str, value: object) -> None:
    """`value` must be True or False; ConfigurationError naming it."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")


class LazyClient:
    """One client per process, built by `factory` on first use.

    Thread-safe. Building on first use (not at import or configuration time) keeps a
    server that imports the app and then forks (gunicorn --preload, uWSGI, Celery
    prefork) from sharing one client between processes: a process that sees a client
    built by another pid builds its own. Clients close at interpreter exit (the core's
    atexit hook); `close()` closes earlier.
    """

    def __init__(self, factory: Callable[[], Client]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._pid = 0

    @property
    def built(self) -> bool:
        """True when this process already has its client."""
        return self._client is not None and self._pid == os.getpid()

    def get(self) -> Client:
        """This process's client, built now if needed (blocks only while building)."""
        client = self._client
        if client is not None and self._pid == os.getpid():
            return client
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                # A client inherited through fork is left to the parent: the core reset
                # its queue in this child, so dropping the reference loses nothing.
                self._client = self._factory()
                self._pid = os.getpid()
            return self._client

    def reset(self) -> None:
        """Forget the current client without closing it (the next `get()` builds one)."""
        with self._lock:
            self._client = None
            self._pid = 0

    def close(self, timeout: float | None = None) -> bool:
        """Close this process's client, if built, within `timeout`; the next `get()` rebuilds.

        Returns close_and_flush's result (True when there was nothing to close).
        """
        with self._lock:
            client, pid = self._client, self._pid
            self._client, self._pid = None, 0
        if client is None or pid != os.getpid():
            return True
        return client.close_and_flush(timeout)
