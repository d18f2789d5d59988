"""The Client: configuration, the six calls, and the lifecycle (flush, close, atexit)."""

from __future__ import annotations

import dataclasses
import functools
import os
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from ._batch import MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES
from ._consumer import ClientStats, Consumer, ErrorHandler
from ._exceptions import ConfigurationError, DeliveryError
from ._json import dumps
from ._messages import (
    Message,
    build_alias,
    build_group,
    build_identify,
    build_page,
    build_screen,
    build_track,
    too_large_error,
)
from ._middleware import DropReporter, Middleware, MiddlewareChains
from ._network import check_host_typo, oauth_server_for, resolve_host, session_options
from ._oauth import OAuthSettings, OAuthTransport
from ._plan import PlanEnforcer, TrackingPlan, ViolationHandler, load_plan
from ._queue import MemoryQueue, MessageQueue
from ._retry import RetryPolicy
from ._scope import current_defaults
from ._spool import DEFAULT_SPOOL_MAX_BYTES, DEFAULT_SPOOL_SYNC_INTERVAL, SpoolQueue
from ._transport import HTTPTransport, Transport

__all__ = ["DEFAULT_HOST", "DEFAULT_PATH", "Client"]

DEFAULT_HOST = "https://api.segment.io"
DEFAULT_PATH = "/v1/batch"


def _check_number(
    name: str, value: Any, *, minimum: float, maximum: float | None = None,
    integer: bool = False, inclusive: bool = True,
) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        expected = "an integer" if integer else "a number"
        raise ConfigurationError(f"{name} must be {expected}, got {value!r}")
    number = float(value)
    too_small = number < minimum if inclusive else number <= minimum
    if too_small or (maximum is not None and number > maximum):
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        if maximum is not None:
            bound += f" and <= {maximum}"
        raise ConfigurationError(f"{name} must be {bound}, got {value!r}")


def _normalise_host(host: str) -> str:
    if not isinstance(host, str) or not host.strip():
        raise ConfigurationError(f"host must be a URL such as {DEFAULT_HOST!r}, got {host!r}")
    host = host.strip().rstrip("/")
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"host must start with http:// or https:// and name a server, got {host!r}"
        )
    return host


class Client:
    """A Segment client. Safe to share between threads; one per process is typical.

    The six calls validate and encode the message on the caller's thread, queue it and
    return its `messageId` without waiting for the network. A background thread sends
    batches. Only programmer errors raise (`ConfigurationError` here, `MessageError`
    from a call); delivery problems go to `on_error`, the `segment_client` logger and
    `stats()`.

    Args:
        write_key: the source's write key; defaults to `$SEGMENT_WRITE_KEY`.
        host: the collector's base URL; defaults to `$SEGMENT_HOST`, then Segment's US API.
        path: the batch route on `host`.
        flush_at: messages per batch (1..2500).
        flush_interval: seconds a partial batch waits after its first message.
        max_queue_size: queued messages at most; more are dropped and reported.
        max_retries: retries after a failed attempt (attempts = max_retries + 1).
        request_timeout: seconds per HTTP attempt (connect, and each read).
        gzip: compress request bodies.
        send: False validates and counts but never sends.
        sync_mode: True sends within each call, on the caller's thread (no thread).
        on_error: `on_error(error, messages)` for every message not delivered; runs on
            the consumer thread (the caller's for drops); its exceptions are logged.
        transport: a custom `Transport` (tests, proxies); replaces the HTTP transport.
        shutdown_timeout: the bound on the close performed at interpreter exit.
        retry_base_delay: the exponential backoff's first ceiling, in seconds.
        retry_max_delay: the cap on one backoff wait, in seconds.
        rate_limit_budget: seconds one batch may wait on 429 Retry-After in total.
        queue: a custom `MessageQueue` factory (the on-disk spool uses this seam).
        integrations: default `integrations` merged under each call's own (the call's
            keys win), e.g. `{"All": True, "Salesforce": False}`.
        tracking_plan: a `TrackingPlan`, a path to a plan JSON file or a parsed dict
            (see `load_plan`); every track/identify/group message is checked against it.
        on_violation: what a message that breaks its rule does: "report" (send it; call
            `on_plan_violation`, count, log), "drop" (report and do not send) or "raise"
            (`TrackingPlanViolation` from the call; for development and tests).
        on_unplanned: a track event the plan does not list: "allow", "report" or "drop".
        on_plan_violation: `hook(error: TrackingPlanViolation, message)` for reported and
            dropped violations and unplanned events; runs on the caller's thread.
        spool_dir: keep accepted messages in files in this directory until delivered, so
            a crash, a restart or a long outage loses none (docs/spool.md). Several
            processes may share it. None (default): messages are kept in memory only.
        spool_max_bytes: the spool's size limit in bytes (default 1 GiB); past it new
            messages are dropped and reported (reason "spool_full"). Replaces
            max_queue_size when spool_dir is set.
        spool_sync_interval: seconds between fsyncs of the spool, done in the background
            (a machine crash loses at most this much); None leaves it to the OS.
        region: "us" or "eu": Segment's host for that region (instead of `host`).
        proxies: requests-style `{"https": "http://proxy:3128"}`; the HTTPS_PROXY /
            NO_PROXY environment variables apply when not given.
        verify: True, False or the path of a CA bundle for TLS verification.
        cert: the client certificate: a PEM path, or a (certificate, key) path tuple.
        oauth: `OAuthSettings` to authenticate with OAuth bearer tokens (extra `oauth`).
    """

    def __init__(
        self,
        write_key: str | None = None,
        *,
        host: str | None = None,
        path: str = DEFAULT_PATH,
        flush_at: int = 100,
        flush_interval: float = 0.5,
        max_queue_size: int = 10_000,
        max_retries: int = 10,
        request_timeout: float = 10.0,
        gzip: bool = True,
        send: bool = True,
        sync_mode: bool = False,
        on_error: ErrorHandler | None = None,
        transport: Transport | None = None,
        shutdown_timeout: float = 5.0,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 60.0,
        rate_limit_budget: float = 600.0,
        queue: Callable[[], MessageQueue] | None = None,
        integrations: Mapping[str, Any] | None = None,
        tracking_plan: TrackingPlan | str | os.PathLike[str] | Mapping[str, Any] | None = None,
        on_violation: str = "report",
        on_unplanned: str = "allow",
        on_plan_violation: ViolationHandler | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        spool_sync_interval: float | None = DEFAULT_SPOOL_SYNC_INTERVAL,
        region: str | None = None,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str | None = None,
        cert: str | tuple[str, str] | None = None,
        oauth: OAuthSettings | None = None,
    ) -> None:
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
        self.host = _normalise_host(host)
        check_host_typo(self.host)
        network = session_options(proxies, verify, cert)
        if oauth is not None and not isinstance(oauth, OAuthSettings):
            raise ConfigurationError(f"oauth must be an OAuthSettings, got {type(oauth).__name__}")
        if transport is not None and (network or oauth is not None):
            raise ConfigurationError(
                "proxies=, verify=, cert= and oauth= configure the built-in HTTP transport; "
                "they cannot be combined with transport="
            )
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigurationError(f"path must start with '/', got {path!r}")
        _check_number("flush_at", flush_at, minimum=1, maximum=MAX_BATCH_MESSAGES, integer=True)
        _check_number("flush_interval", flush_interval, minimum=0, inclusive=False)
        _check_number("max_queue_size", max_queue_size, minimum=1, integer=True)
        _check_number("max_retries", max_retries, minimum=0, integer=True)
        _check_number("request_timeout", request_timeout, minimum=0, inclusive=False)
        _check_number("shutdown_timeout", shutdown_timeout, minimum=0)
        _check_number("retry_base_delay", retry_base_delay, minimum=0)
        _check_number("retry_max_delay", retry_max_delay, minimum=0)
        _check_number("rate_limit_budget", rate_limit_budget, minimum=0)
        for name, flag in (("gzip", gzip), ("send", send), ("sync_mode", sync_mode)):
            if not isinstance(flag, bool):
                raise ConfigurationError(f"{name} must be True or False, got {flag!r}")
        if on_error is not None and not callable(on_error):
            raise ConfigurationError(f"on_error must be callable, got {on_error!r}")
        _check_number("spool_max_bytes", spool_max_bytes, minimum=1, integer=True)
        if spool_sync_interval is not None:
            _check_number("spool_sync_interval", spool_sync_interval, minimum=0, inclusive=False)
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
            queue = _spool_factory(spool_dir, spool_max_bytes, spool_sync_interval)
        if transport is not None and not isinstance(transport, Transport):
            raise ConfigurationError(
                f"transport must have send() and close() methods, got {transport!r}"
            )

        self.path = path
        self.flush_at = flush_at
        self.flush_interval = flush_interval
        self.max_queue_size = max_queue_size
        self.send = send
        self.sync_mode = sync_mode
        self.shutdown_timeout = shutdown_timeout
        self._write_key = write_key
        self._transport = transport or _http_transport(
            write_key, self.host, path, request_timeout, gzip, network, oauth
        )
        self._consumer = Consumer(
            queue_factory=queue or (lambda: MemoryQueue(max_queue_size)),
            transport=self._transport,
            write_key=write_key,
            flush_at=flush_at,
            flush_interval=flush_interval,
            policy=RetryPolicy(
                max_retries=max_retries,
                base_delay=retry_base_delay,
                max_delay=retry_max_delay,
                rate_limit_budget=rate_limit_budget,
            ),
            on_error=on_error,
            sync_mode=sync_mode,
            exit_timeout=shutdown_timeout,
        )
        # Middleware, default integrations and the tracking plan (all on the caller side).
        if integrations is not None and not isinstance(integrations, Mapping):
            raise ConfigurationError(f"integrations must be a dict, got {integrations!r}")
        self._integrations = dict(integrations or {})
        self._middleware = MiddlewareChains()
        self._drop = _drop_reporter(self._consumer)  # refers to the consumer only
        self._plan: PlanEnforcer | None = None
        if tracking_plan is not None:
            self._plan = PlanEnforcer(
                load_plan(tracking_plan), on_violation=on_violation,
                on_unplanned=on_unplanned, handler=on_plan_violation, drop=self._consumer.drop,
            )
        # A client dropped without close_and_flush(): let its thread drain and exit rather
        # than live on idle for the life of the process.
        weakref.finalize(self, self._consumer.request_close).atexit = False

    def __repr__(self) -> str:
        # Never the write key: reprs end up in logs and tracebacks.
        return f"Client(host={self.host!r}, path={self.path!r})"

    # -- the six calls -----------------------------------------------------------------

    def identify(
        self,
        user_id: str | int | None = None,
        traits: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        timestamp: Any = None,
        anonymous_id: str | int | None = None,
        integrations: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> str:
        """Record who a user is. Returns the messageId; never blocks (except sync_mode)."""
        scope = current_defaults()
        if scope is not None:
            user_id, anonymous_id, context = scope.apply(user_id, anonymous_id, context)
        return self._enqueue(
            build_identify(
                user_id, traits, context, timestamp, anonymous_id, integrations, message_id
            )
        )

    def track(
        self,
        user_id: str | int | None = None,
        event: str | None = None,
        properties: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        timestamp: Any = None,
        anonymous_id: str | int | None = None,
        integrations: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> str:
        """Record an action. Returns the messageId; never blocks (except sync_mode)."""
        scope = current_defaults()
        if scope is not None:
            user_id, anonymous_id, context = scope.apply(user_id, anonymous_id, context)
        return self._enqueue(
            build_track(
                user_id, event, properties, context, timestamp, anonymous_id,
                integrations, message_id,
            )
        )

    def group(
        self,
        user_id: str | int | None = None,
        group_id: str | int | None = None,
        traits: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        timestamp: Any = None,
        anonymous_id: str | int | None = None,
        integrations: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> str:
        """Associate a user with a group. Returns the messageId; never blocks."""
        scope = current_defaults()
        if scope is not None:
            user_id, anonymous_id, context = scope.apply(user_id, anonymous_id, context)
        return self._enqueue(
            build_group(
                user_id, group_id, traits, context, timestamp, anonymous_id,
                integrations, message_id,
            )
        )

    def page(
        self,
        user_id: str | int | None = None,
        category: str | None = None,
        name: str | None = None,
        properties: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        timestamp: Any = None,
        anonymous_id: str | int | None = None,
        integrations: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> str:
        """Record a page view. Returns the messageId; never blocks (except sync_mode)."""
        scope = current_defaults()
        if scope is not None:
            user_id, anonymous_id, context = scope.apply(user_id, anonymous_id, context)
        return self._enqueue(
            build_page(
                user_id, category, name, properties, context, timestamp, anonymous_id,
                integrations, message_id,
            )
        )

    def screen(
        self,
        user_id: str | int | None = None,
        category: str | None = None,
        name: str | None = None,
        properties: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        timestamp: Any = None,
        anonymous_id: str | int | None = None,
        integrations: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> str:
        """Record a screen view. Returns the messageId; never blocks (except sync_mode)."""
        scope = current_defaults()
        if scope is not None:
            user_id, anonymous_id, context = scope.apply(user_id, anonymous_id, context)
        return self._enqueue(
            build_screen(
                user_id, category, name, properties, context, timestamp, anonymous_id,
                integrations, message_id,
            )
        )

    def alias(
        self,
        previous_id: str | int | None = None,
        user_id: str | int | None = None,
        context: dict[str, Any] | None = None,
        timestamp: Any = None,
        integrations: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> str:
        """Merge two user identities. Returns the messageId; never blocks."""
        scope = current_defaults()
        if scope is not None:
            _, _, context = scope.apply(None, None, context)
        return self._enqueue(
            build_alias(previous_id, user_id, context, timestamp, integrations, message_id)
        )

    def add_middleware(
        self, middleware: Middleware, *, consumer_side: bool = False, deep_copy: bool = False
    ) -> None:
        """Append `middleware` to a chain (see docs/middleware.md).

        Caller-side (default): runs in the call, before encoding. `consumer_side=True`:
        runs on the consumer thread before sending, keeping the call cheap. `deep_copy`:
        give a caller-side middleware a deep copy (it mutates nested values in place).
        Thread-safe: calls in flight keep the chain they started with.
        """
        if not callable(middleware):
            raise ConfigurationError(f"middleware must be callable, got {middleware!r}")
        self._middleware.add(middleware, consumer_side=consumer_side, deep_copy=deep_copy)
        if consumer_side:
            # Never a bound method of the client: the consumer thread must not keep it alive.
            self._consumer.prepare = functools.partial(
                self._middleware.prepare_batch, drop=self._drop
            )

    def remove_middleware(self, middleware: Middleware) -> None:
        """Remove `middleware` from its chain (ValueError when it is not there)."""
        self._middleware.remove(middleware)
        if not self._middleware.consumer:
            self._consumer.prepare = None

    def _enqueue(self, message: Message) -> str:
        message_id: str = message["messageId"]
        if self._integrations:
            # The builder made this dict: replacing the key leaves the caller's alone.
            message["integrations"] = {**self._integrations, **message["integrations"]}
        if self._middleware.caller:
            result = self._middleware.run_caller(message, self._drop)
            if result is None:
                return message_id
            message = result
        if self._plan is not None and not self._plan.admit(message):
            return message_id
        data = dumps(message)
        if len(data) > MAX_MESSAGE_BYTES:
            raise too_large_error(message, len(data), MAX_MESSAGE_BYTES)
        if not self.send:
            self._consumer.drop_quietly("send_disabled")
        else:
            self._consumer.put(data, message)
        return message_id

    # -- lifecycle ----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send the partial batch now and wait for everything queued before the call.

        Thread-safe. Blocks until done or `timeout` seconds (None: no limit). Returns
        True when all of it was delivered, False on timeout or if any of it failed.
        """
        if timeout is not None:
            _check_number("timeout", timeout, minimum=0)
        return self._consumer.flush(timeout)

    def close_and_flush(self, timeout: float | None = None) -> bool:
        """Stop accepting calls, deliver what is queued, stop the thread, close the session.

        Returns by `timeout` (None: no limit) and reports whatever is left as failed.
        True when everything queued was delivered. Idempotent; later calls to the six
        methods are reported as `ClientClosedError` and counted, never raised.
        """
        if timeout is not None:
            _check_number("timeout", timeout, minimum=0)
        return self._consumer.close(timeout)

    def stats(self) -> ClientStats:
        """A snapshot of message counts (queued, delivered, failed, dropped...)."""
        stats = self._consumer.stats()
        if self._plan is not None:
            stats = dataclasses.replace(
                stats, violations=self._plan.violations, unplanned=self._plan.unplanned
            )
        return stats

    # -- asyncio: the waits run in a worker thread, so the event loop keeps running ----

    async def aflush(self, timeout: float | None = None) -> bool:
        """`flush()` for coroutines: awaitable, never blocks the event loop."""
        import asyncio  # here: the library's import time stays small for sync users

        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> bool:
        """`close_and_flush()` for coroutines (FastAPI lifespan, async workers)."""
        import asyncio

        return await asyncio.to_thread(self.close_and_flush, timeout)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close_and_flush()


def _drop_reporter(consumer: Consumer) -> DropReporter:
    """Report a middleware drop: counted only when on purpose (error None)."""

    def report(reason: str, error: DeliveryError | None, messages: list[dict[str, Any]]) -> None:
        if error is None:
            consumer.drop_quietly(reason)
        else:
            consumer.drop(reason, error, messages)

    return report


def _http_transport(
    write_key: str, host: str, path: str, timeout: float, gzip: bool,
    network: dict[str, Any], oauth: OAuthSettings | None,
) -> HTTPTransport:
    options: dict[str, Any] = {
        "url": host + path, "timeout": timeout, "gzip": gzip, "session_options": network,
    }
    if oauth is None:
        return HTTPTransport(write_key, **options)
    server = oauth.auth_server or oauth_server_for(host)
    return OAuthTransport(write_key, oauth=oauth, auth_server=server, **options)


def _spool_factory(
    directory: str | os.PathLike[str], max_bytes: int, sync_interval: float | None
) -> Callable[[], MessageQueue]:
    # Called again in a forked child: each process gets its own spool file.
    def make() -> MessageQueue:
        return SpoolQueue(directory, max_bytes=max_bytes, sync_interval=sync_interval)

    return make

