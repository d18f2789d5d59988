"""Checking every `Client` argument before anything is built.

`check_options` validates the arguments and returns them as a `ClientConfig`, resolving
the write key, host, region and network options. It builds nothing with side effects:
no file, no thread, no socket. A `ConfigurationError` from here names the argument and
what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._batch import MAX_BATCH_MESSAGES
from ._checks import check_flag, check_number, check_timeout
from ._exceptions import ConfigurationError, DeliveryError
from ._network import US_HOST, check_host_typo, resolve_host, session_options
from ._plan import TrackingPlan, load_plan
from ._queue import MessageQueue
from ._transports import Transport
from ._transports._auth import OAuthSettings

__all__ = [
    "DEFAULT_FLUSH_TIMEOUT",
    "DEFAULT_HOST",
    "DEFAULT_PATH",
    "ClientConfig",
    "check_flag",
    "check_number",
    "check_options",
    "check_timeout",
    "normalise_host",
]

DEFAULT_HOST = US_HOST
DEFAULT_PATH = "/v1/batch"
#: The bound on flush() and close_and_flush() called without a timeout, in seconds.
DEFAULT_FLUSH_TIMEOUT = 10.0

ErrorHandler = Callable[[DeliveryError, list[dict[str, Any]]], None]


def normalise_host(host: Any) -> str:
    """`host` without trailing slashes; a scheme and a server are required, a path is
    refused (it belongs in `path=`)."""
    if not isinstance(host, str) or not host.strip():
        raise ConfigurationError(f"host must be a URL such as {DEFAULT_HOST!r}, got {host!r}")
    text: str = host.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"host must start with http:// or https:// and name a server, got {text!r}"
        )
    if parts.path or parts.query or parts.fragment:
        base = f"{parts.scheme}://{parts.netloc}"
        raise ConfigurationError(
            f"host must be the server's base URL without a path, got {text!r}; pass the "
            f"route as path=: Client(host={base!r}, path={parts.path or DEFAULT_PATH!r})"
        )
    return text


@dataclass(frozen=True)
class ClientConfig:
    """Validated `Client` arguments. Immutable."""

    write_key: str
    host: str
    path: str
    flush_at: int
    flush_interval: float
    max_queue_size: int
    max_retries: int
    request_timeout: float
    gzip: bool
    send: bool
    sync_mode: bool
    on_error: ErrorHandler | None
    transport: Transport | None
    shutdown_timeout: float
    flush_timeout: float
    retry_base_delay: float
    retry_max_delay: float
    rate_limit_budget: float
    queue: Callable[[], MessageQueue] | None
    integrations: dict[str, Any]
    tracking_plan: TrackingPlan | None
    spool_dir: str | None
    spool_max_bytes: int
    spool_sync_interval: float | None
    spool_shared_group: bool
    network: dict[str, Any]
    oauth: OAuthSettings | None


def check_options(
    write_key: Any, *, host: Any, path: Any, flush_at: Any, flush_interval: Any,
    max_queue_size: Any, max_retries: Any, request_timeout: Any, gzip: Any, send: Any,
    sync_mode: Any, on_error: Any, transport: Any, shutdown_timeout: Any,
    flush_timeout: Any, retry_base_delay: Any, retry_max_delay: Any,
    rate_limit_budget: Any, queue: Any, integrations: Any, tracking_plan: Any,
    spool_dir: Any, spool_max_bytes: Any, spool_sync_interval: Any, region: Any,
    proxies: Any, verify: Any, cert: Any, oauth: Any, spool_shared_group: Any = False,
) -> ClientConfig:
    """Validate every `Client` argument (see `Client` for their meaning).

    Reads `$SEGMENT_WRITE_KEY` and `$SEGMENT_HOST` when the key or host is not given;
    loads the tracking plan (reading its file when a path is given).
    """
    if write_key is None:
        write_key = os.environ.get("SEGMENT_WRITE_KEY") or None
    if not isinstance(write_key, str) or not write_key:
        raise ConfigurationError(
            "write_key is required: pass Client('WRITE_KEY') or set SEGMENT_WRITE_KEY"
            + ("" if write_key is None else f" (got {type(write_key).__name__})")
        )
    host = resolve_host(host, region)
    if host is None:
        host = os.environ.get("SEGMENT_HOST") or DEFAULT_HOST
    host = normalise_host(host)
    check_host_typo(host)
    network = session_options(proxies, verify, cert)
    if oauth is not None and not isinstance(oauth, OAuthSettings):
        raise ConfigurationError(f"oauth must be an OAuthSettings, got {type(oauth).__name__}")
    if transport is not None and (network or oauth is not None):
        raise ConfigurationError(
            "proxies=, verify=, cert= and oauth= configure the built-in HTTP transport; "
            "they cannot be combined with transport="
        )
    if transport is not None and not isinstance(transport, Transport):
        raise ConfigurationError(
            f"transport must have send() and close() methods, got {transport!r}"
        )
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigurationError(f"path must start with '/', got {path!r}")
    check_number("flush_at", flush_at, minimum=1, maximum=MAX_BATCH_MESSAGES, integer=True)
    check_number("flush_interval", flush_interval, minimum=0, inclusive=False)
    check_number("max_queue_size", max_queue_size, minimum=1, integer=True)
    check_number("max_retries", max_retries, minimum=0, integer=True)
    check_number("request_timeout", request_timeout, minimum=0, inclusive=False)
    check_number("shutdown_timeout", shutdown_timeout, minimum=0)
    check_timeout("flush_timeout", flush_timeout)
    check_number("retry_base_delay", retry_base_delay, minimum=0)
    check_number("retry_max_delay", retry_max_delay, minimum=0)
    check_number("rate_limit_budget", rate_limit_budget, minimum=0)
    for name, flag in (
        ("gzip", gzip), ("send", send), ("sync_mode", sync_mode),
        ("spool_shared_group", spool_shared_group),
    ):
        check_flag(name, flag)
    if on_error is not None and not callable(on_error):
        raise ConfigurationError(f"on_error must be callable, got {on_error!r}")
    check_number("spool_max_bytes", spool_max_bytes, minimum=1, integer=True)
    if spool_sync_interval is not None:
        check_number("spool_sync_interval", spool_sync_interval, minimum=0, inclusive=False)
    if spool_dir is not None:
        if not isinstance(spool_dir, str | os.PathLike) or not os.fspath(spool_dir):
            raise ConfigurationError(
                f"spool_dir must be a directory path (str or PathLike), got {spool_dir!r}"
            )
        if queue is not None:
            raise ConfigurationError("pass either spool_dir or queue, not both")
        if sync_mode:
            raise ConfigurationError(
                "spool_dir cannot be combined with sync_mode=True (nothing is queued)"
            )
    if queue is not None and not callable(queue):
        raise ConfigurationError(
            f"queue must be a callable returning a MessageQueue, got {queue!r}"
        )
    if integrations is not None and not isinstance(integrations, Mapping):
        raise ConfigurationError(f"integrations must be a dict, got {integrations!r}")
    plan = None if tracking_plan is None else load_plan(tracking_plan)
    return ClientConfig(
        write_key=write_key, host=host, path=path, flush_at=flush_at,
        flush_interval=flush_interval, max_queue_size=max_queue_size,
        max_retries=max_retries, request_timeout=request_timeout, gzip=gzip, send=send,
        sync_mode=sync_mode, on_error=on_error, transport=transport,
        shutdown_timeout=shutdown_timeout, flush_timeout=flush_timeout,
        retry_base_delay=retry_base_delay, retry_max_delay=retry_max_delay,
        rate_limit_budget=rate_limit_budget, queue=queue,
        integrations=dict(integrations or {}), tracking_plan=plan,
        spool_dir=None if spool_dir is None else os.fspath(spool_dir),
        spool_max_bytes=spool_max_bytes, spool_sync_interval=spool_sync_interval,
        spool_shared_group=spool_shared_group, network=network, oauth=oauth,
    )
