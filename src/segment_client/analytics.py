"""The module-level API of analytics-python, on a default `Client`.

Replacing `import segment.analytics as analytics` with
`import segment_client.analytics as analytics` is the whole migration for code that
configures the module and calls it:

```python
import segment_client.analytics as analytics

analytics.write_key = "YOUR_WRITE_KEY"   # or $SEGMENT_WRITE_KEY
analytics.debug = False
analytics.track("user-1", "Order Completed", {"revenue": 59.99})
analytics.flush()
```

The settings are module attributes, read when the default client is created: at the
first call (one of the six, `flush()` excepted when nothing was sent). Importing this
module never raises, and neither does a missing write key: without one the default
client validates and counts messages but sends nothing (`send = False`), with one
warning saying how to set the key. `shutdown()` closes the default client; the next call
creates a new one from the settings as they are then (as does `default_client = None`).

Thread-safe: the default client is created once, under a lock; the six calls are the
`Client` methods (see `segment_client.Client`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import types
from collections.abc import Callable, Mapping
from typing import Any

from . import Client, DeliveryError, OAuthSettings

__all__ = [
    "Client",
    "alias",
    "default_client",
    "flush",
    "group",
    "identify",
    "join",
    "page",
    "screen",
    "shutdown",
    "track",
]

# -- settings (analytics-python's names; None: the Client's default) ---------------------
write_key: str | None = None
host: str | None = None
on_error: Callable[[DeliveryError, list[dict[str, Any]]], object] | None = None
debug: bool = False
log_handler: logging.Handler | None = None
send: bool = True
sync_mode: bool = False
max_queue_size: int | None = None
gzip: bool | None = None
timeout: float | None = None  # seconds per HTTP attempt (the Client's request_timeout)
max_retries: int | None = None
proxies: Mapping[str, str] | None = None
# The Client's names for batching, and the Client options of analytics-python for them.
flush_at: int | None = None
flush_interval: float | None = None
upload_size: int | None = None  # = flush_at
upload_interval: float | None = None  # = flush_interval
oauth_client_id: str | None = None
oauth_client_key: str | None = None
oauth_key_id: str | None = None
oauth_auth_server: str | None = None
oauth_scope: str | None = None

#: The client the module functions use, created at the first call; None before that and
#: after `shutdown()`. Setting it to None makes the next call create a new one.
default_client: Client | None = None

# Settings read when the default client is created (changing one later is ignored and
# logged once).
_SETTINGS = (
    "write_key", "host", "on_error", "debug", "log_handler", "send", "sync_mode",
    "max_queue_size", "gzip", "timeout", "max_retries", "proxies", "flush_at",
    "flush_interval", "upload_size", "upload_interval", "oauth_client_id",
    "oauth_client_key", "oauth_key_id", "oauth_auth_server", "oauth_scope",
)
# What a client without a write key is given: it never sends (send=False).
_NO_KEY = "no-write-key"

logger = logging.getLogger("segment_client")
_log = logging.getLogger(__name__)  # this module's own warnings (named by the logger)
_lock = threading.Lock()
_debug_handler: logging.Handler | None = None
_added_handler: logging.Handler | None = None


def _options() -> dict[str, Any]:
    """The Client arguments the current settings give (None settings are left out)."""
    options: dict[str, Any] = {
        "host": host,
        "on_error": on_error,
        "send": send,
        "sync_mode": sync_mode,
        "max_queue_size": max_queue_size,
        "gzip": gzip,
        "request_timeout": timeout,
        "max_retries": max_retries,
        "proxies": proxies,
        "flush_at": flush_at if flush_at is not None else upload_size,
        "flush_interval": flush_interval if flush_interval is not None else upload_interval,
    }
    if oauth_client_id or oauth_client_key or oauth_key_id:
        # Like analytics-python, OAuth needs all three; OAuthSettings names a missing one.
        oauth: dict[str, Any] = {
            "client_id": oauth_client_id, "key_id": oauth_key_id,
            "private_key": oauth_client_key,
        }
        if oauth_scope is not None:
            oauth["scope"] = oauth_scope
        if oauth_auth_server is not None:
            oauth["auth_server"] = oauth_auth_server
        options["oauth"] = OAuthSettings(**oauth)
    return {name: value for name, value in options.items() if value is not None}


def _apply_logging() -> None:
    """Attach (or remove) the debug stderr handler and `log_handler`; idempotent."""
    global _debug_handler, _added_handler
    if debug and _debug_handler is None:
        _debug_handler = logging.StreamHandler(sys.stderr)
        _debug_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        logger.addHandler(_debug_handler)
        logger.setLevel(logging.DEBUG)
    elif not debug and _debug_handler is not None:
        logger.removeHandler(_debug_handler)
        logger.setLevel(logging.NOTSET)
        _debug_handler = None
    if log_handler is not _added_handler:
        if _added_handler is not None:
            logger.removeHandler(_added_handler)
        if log_handler is not None:
            logger.addHandler(log_handler)
        _added_handler = log_handler


def _client() -> Client:
    """The default client, created from the settings on first use."""
    client = default_client
    if client is not None:
        return client
    with _lock:
        if default_client is None:
            _set_default(_create())
        assert default_client is not None
        return default_client


def _create() -> Client:
    _apply_logging()
    options = _options()
    # Only a missing key is forgiven (local runs, CI): a wrong setting is a programmer
    # error and raises ConfigurationError from the call, naming it.
    if write_key is not None or os.environ.get("SEGMENT_WRITE_KEY"):
        return Client(write_key, **options)
    _log.warning(
        "no write key (set analytics.write_key or "
        "$SEGMENT_WRITE_KEY); messages are validated and counted but not sent"
    )
    options["send"] = False
    return Client(_NO_KEY, **options)


def _set_default(client: Client | None) -> None:
    global default_client
    default_client = client
    _Module.created = {name: globals()[name] for name in _SETTINGS} if client else None


# -- the six calls: analytics-python's positional order (see Client) ---------------------


def identify(*args: Any, **kwargs: Any) -> str:
    """`Client.identify` on the default client; returns the messageId."""
    return _client().identify(*args, **kwargs)


def track(*args: Any, **kwargs: Any) -> str:
    """`Client.track` on the default client; returns the messageId."""
    return _client().track(*args, **kwargs)


def group(*args: Any, **kwargs: Any) -> str:
    """`Client.group` on the default client; returns the messageId."""
    return _client().group(*args, **kwargs)


def page(*args: Any, **kwargs: Any) -> str:
    """`Client.page` on the default client; returns the messageId."""
    return _client().page(*args, **kwargs)


def screen(*args: Any, **kwargs: Any) -> str:
    """`Client.screen` on the default client; returns the messageId."""
    return _client().screen(*args, **kwargs)


def alias(*args: Any, **kwargs: Any) -> str:
    """`Client.alias` on the default client; returns the messageId."""
    return _client().alias(*args, **kwargs)


def flush(timeout: float | None = None) -> bool:
    """Deliver what the default client queued; True when all of it was delivered.

    Blocks up to `timeout` (None: the client's default bound). Nothing to do (True)
    before the first call.
    """
    client = default_client
    return True if client is None else client.flush(timeout)


def shutdown(timeout: float | None = None) -> bool:
    """Deliver what is queued and close the default client (`Client.close_and_flush`).

    Blocks up to `timeout`. A later call creates a new default client.
    """
    with _lock:
        client = default_client
        _set_default(None)
    return True if client is None else client.close_and_flush(timeout)


def join(timeout: float | None = None) -> bool:
    """The same as `shutdown()`: analytics-python's join stops the thread and loses
    what is still queued; here nothing queued is left behind."""
    return shutdown(timeout)


class _Module(types.ModuleType):
    """This module's type: a setting changed after the default client was created is
    logged (it applies only to the next default client)."""

    created: dict[str, Any] | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in ("debug", "log_handler"):
            _apply_logging()  # logging applies at once, client or not
        created = _Module.created
        if (
            created is not None and name in created and name not in ("debug", "log_handler")
            and created[name] != value
        ):
            created[name] = value  # logged once per change
            _log.warning(
                "%s changed after the default client was "
                "created; it applies after analytics.shutdown()", name,
            )


sys.modules[__name__].__class__ = _Module
