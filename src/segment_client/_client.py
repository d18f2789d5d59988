"""The Client: the six calls through one path, live options, and the lifecycle."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from ._batch import MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES
from ._config import (
    DEFAULT_FLUSH_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_PATH,
    check_flag,
    check_number,
    check_options,
    check_timeout,
)
from ._consumer import Consumer, ErrorHandler
from ._events import Events, EventSource
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
from ._network import oauth_server_for
from ._plan import PlanEnforcer, TrackingPlan, ViolationHandler
from ._queue import MemoryQueue, MessageQueue
from ._retry import RetryPolicy
from ._scope import current_defaults
from ._spool import DEFAULT_SPOOL_MAX_BYTES, DEFAULT_SPOOL_SYNC_INTERVAL, SpoolQueue
from ._stats import ClientStats
from ._transports import Transport
from ._transports._auth import OAuth, OAuthSettings
from ._transports._http import HTTPTransport

__all__ = ["DEFAULT_HOST", "DEFAULT_PATH", "Client"]


def _read_only(name: str) -> property:
    """A read-only attribute whose setter says so, naming the option."""

    def get(self: Client) -> Any:
        return getattr(self._config, name)

    def refuse(self: Client, value: Any) -> None:
        raise AttributeError(
            f"Client.{name} is fixed when the client is created; "
            f"create a new Client({name}=...) to change it"
        )

    return property(get, refuse, doc=f"The `{name}` option (read-only).")


def _scoped(
    user_id: str | int | None, anonymous_id: str | int | None, context: dict[str, Any] | None
) -> tuple[str | int | None, str | int | None, dict[str, Any] | None]:
    """Apply the request-scoped defaults (`context_defaults`), if any."""
    scope = current_defaults()
    if scope is None:
        return user_id, anonymous_id, context
    return scope.apply(user_id, anonymous_id, context)


class Client(EventSource):
    """A Segment client. Safe to share between threads; one per process is typical.

    The six calls validate and encode the message on the caller's thread, queue it and
    return its `messageId` without waiting for the network. A background thread sends
    batches. Only programmer errors raise (`ConfigurationError` here, `MessageError`
    from a call); delivery problems go to `on_error`, the events (`on()`), the
    `segment_client` logger and `stats()`.

    Args:
        write_key: the source's write key; defaults to `$SEGMENT_WRITE_KEY`.
        host: the collector's base URL; defaults to `$SEGMENT_HOST`, then Segment's US API.
        path: the batch route on `host`.
        flush_at: messages that trigger a batch (1..2500). Under a backlog (more
            waiting than `flush_at`) a batch carries all that wait, up to 1,000
            messages and 500 KB, so a burst drains in few large requests.
        flush_interval: seconds a partial batch waits after its first message.
        max_queue_size: queued messages at most; more are dropped and reported.
        max_retries: retries after a failed attempt (attempts = max_retries + 1).
        request_timeout: seconds per HTTP attempt in all (connect, send and read).
        gzip: compress request bodies.
        send: False validates and counts but never sends.
        sync_mode: True sends within each call, on the caller's thread (no thread).
        on_error: `on_error(error, messages)` for every message not delivered; runs on
            the consumer thread (the caller's for drops); its exceptions are logged. The
            short form of `on("delivery_failure", handler)`.
        transport: a custom `Transport` (tests, proxies); replaces the HTTP transport.
        shutdown_timeout: the bound on the close performed at interpreter exit.
        flush_timeout: the bound, in seconds, on `flush()` and `close_and_flush()` called
            without a timeout (default 10); `math.inf` waits without a bound.
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
        spool_shared_group: accept a spool directory its group may write to (several
            users of one group sharing it deliberately); files are then made 0660.
            False (default): such a directory is refused with ConfigurationError.
        region: "us" or "eu": Segment's host for that region (instead of `host`).
        proxies: requests-style `{"https": "http://proxy:3128"}`; the HTTPS_PROXY /
            NO_PROXY environment variables apply when not given.
        verify: True, False or the path of a CA bundle for TLS verification.
        cert: the client certificate: a PEM path, or a (certificate, key) path tuple.
        oauth: `OAuthSettings` to authenticate with OAuth bearer tokens (extra `oauth`).

    Every argument is checked before anything is built: a rejected `Client(...)` leaves
    no file, thread or connection behind. `flush_at`, `flush_interval`, `send`,
    `shutdown_timeout` and `flush_timeout` can be changed on a live client (the next
    batch uses them); the other options are read-only attributes.
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
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
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
        spool_shared_group: bool = False,
        region: str | None = None,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str | None = None,
        cert: str | tuple[str, str] | None = None,
        oauth: OAuthSettings | None = None,
    ) -> None:
        config = check_options(
            write_key, host=host, path=path, flush_at=flush_at,
            flush_interval=flush_interval, max_queue_size=max_queue_size,
            max_retries=max_retries, request_timeout=request_timeout, gzip=gzip,
            send=send, sync_mode=sync_mode, on_error=on_error, transport=transport,
            shutdown_timeout=shutdown_timeout, flush_timeout=flush_timeout,
            retry_base_delay=retry_base_delay, retry_max_delay=retry_max_delay,
            rate_limit_budget=rate_limit_budget, queue=queue, integrations=integrations,
            tracking_plan=tracking_plan, spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes, spool_sync_interval=spool_sync_interval,
            spool_shared_group=spool_shared_group,
            region=region, proxies=proxies, verify=verify, cert=cert, oauth=oauth,
        )
        # The plan's policies are checked here too, before anything with side effects
        # is built; its drops reach the consumer once there is one.
        drops = _LateDrop()
        plan: PlanEnforcer | None = None
        if config.tracking_plan is not None:
            plan = PlanEnforcer(
                config.tracking_plan, on_violation=on_violation, on_unplanned=on_unplanned,
                handler=on_plan_violation, drop=drops,
            )
        # Everything is valid: build (an OAuth key is loaded, a spool may create files).
        self._config = config
        self._send = config.send
        self._flush_timeout = float(config.flush_timeout)
        self._integrations = config.integrations
        self._middleware = MiddlewareChains()
        self._plan = plan
        self._transport_lock = threading.Lock()
        self._events = Events()
        transport = config.transport or _http_transport(config, self._events)
        queue_factory = config.queue
        if config.spool_dir is not None:
            queue_factory = _spool_factory(
                config.spool_dir, config.spool_max_bytes, config.spool_sync_interval,
                config.spool_shared_group,
            )
        if queue_factory is None:
            queue_factory = functools.partial(MemoryQueue, config.max_queue_size)
        self._consumer = Consumer(
            queue_factory=queue_factory,
            transport=transport,
            write_key=config.write_key,
            request_timeout=config.request_timeout,
            flush_at=config.flush_at,
            flush_interval=config.flush_interval,
            policy=RetryPolicy(
                max_retries=config.max_retries,
                base_delay=config.retry_base_delay,
                max_delay=config.retry_max_delay,
                rate_limit_budget=config.rate_limit_budget,
            ),
            on_error=config.on_error,
            sync_mode=config.sync_mode,
            exit_timeout=config.shutdown_timeout,
            events=self._events,
        )
        drops.target = self._consumer.drop
        self._drop = _drop_reporter(self._consumer)  # refers to the consumer only
        # A client dropped without close_and_flush(): let its thread drain and exit rather
        # than live on idle for the life of the process.
        weakref.finalize(self, self._consumer.request_close).atexit = False

    # -- options: live or read-only, never silently ignored ---------------------------

    host = _read_only("host")
    path = _read_only("path")
    max_queue_size = _read_only("max_queue_size")
    sync_mode = _read_only("sync_mode")
    request_timeout = _read_only("request_timeout")
    max_retries = _read_only("max_retries")
    gzip = _read_only("gzip")

    @property
    def send(self) -> bool:
        """False: calls are validated and counted but nothing is sent. Live."""
        return self._send

    @send.setter
    def send(self, value: bool) -> None:
        check_flag("send", value)
        self._send = value

    @property
    def flush_at(self) -> int:
        """Messages per batch (1..2500). Live: the next batch uses a new value."""
        return self._consumer.flush_at

    @flush_at.setter
    def flush_at(self, value: int) -> None:
        check_number("flush_at", value, minimum=1, maximum=MAX_BATCH_MESSAGES, integer=True)
        self._consumer.flush_at = value

    @property
    def flush_interval(self) -> float:
        """Seconds a partial batch waits after its first message. Live."""
        return self._consumer.flush_interval

    @flush_interval.setter
    def flush_interval(self, value: float) -> None:
        check_number("flush_interval", value, minimum=0, inclusive=False)
        self._consumer.flush_interval = value

    @property
    def shutdown_timeout(self) -> float:
        """The bound on the close performed at interpreter exit. Live."""
        return self._consumer.exit_timeout

    @shutdown_timeout.setter
    def shutdown_timeout(self, value: float) -> None:
        check_number("shutdown_timeout", value, minimum=0)
        self._consumer.exit_timeout = value

    @property
    def flush_timeout(self) -> float:
        """The bound on `flush()` / `close_and_flush()` without a timeout. Live."""
        return self._flush_timeout

    @flush_timeout.setter
    def flush_timeout(self, value: float) -> None:
        check_timeout("flush_timeout", value)
        self._flush_timeout = float(value)

    def replace_transport(self, transport: Transport) -> Transport:
        """Send through `transport` from the next attempt on; returns the previous one.

        Thread-safe. The previous transport is not closed (the caller owns it now); the
        new one is closed by `close_and_flush()`. For tests and recorders.
        """
        if not isinstance(transport, Transport):
            raise ConfigurationError(
                f"transport must have send() and close() methods, got {transport!r}"
            )
        with self._transport_lock:
            return self._consumer.sender.replace_transport(transport)

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
        user_id, anonymous_id, context = _scoped(user_id, anonymous_id, context)
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
        user_id, anonymous_id, context = _scoped(user_id, anonymous_id, context)
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
        user_id, anonymous_id, context = _scoped(user_id, anonymous_id, context)
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
        user_id, anonymous_id, context = _scoped(user_id, anonymous_id, context)
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
        """Record a screen view (a page view in an app). Same arguments as `page`."""
        user_id, anonymous_id, context = _scoped(user_id, anonymous_id, context)
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
        _, _, context = _scoped(None, None, context)
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
        if not self._send:
            self._consumer.drop_quietly("send_disabled")
        else:
            self._consumer.put(data, message)
        return message_id

    # -- lifecycle ----------------------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float | None:
        """The wait a flush or close may take: `timeout`, else `flush_timeout`; None
        means no bound (`math.inf`)."""
        if timeout is None:
            timeout = self._flush_timeout
        else:
            check_timeout("timeout", timeout)
        return None if math.isinf(timeout) else float(timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Send the partial batch now and wait for everything queued before the call.

        Thread-safe. Blocks until done or `timeout` seconds; without a timeout, for at
        most the client's `flush_timeout` (10 s by default); `math.inf` waits without a
        bound. Returns True when all of it was delivered, False on timeout or if any of
        it failed.
        """
        return self._consumer.flush(self._deadline(timeout))

    def close_and_flush(self, timeout: float | None = None) -> bool:
        """Stop accepting calls, deliver what is queued, stop the thread, close the session.

        Returns by `timeout` (default: the client's `flush_timeout`; `math.inf`: no
        bound) and reports whatever is left as failed. True when everything queued was
        delivered. Idempotent; later calls to the six methods are reported as
        `ClientClosedError` and counted, never raised.
        """
        return self._consumer.close(self._deadline(timeout))

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


class _LateDrop:
    """Forwards plan drops to the consumer, which is built after the plan is checked."""

    def __init__(self) -> None:
        self.target: Callable[[str, DeliveryError, list[dict[str, Any]]], None] | None = None

    def __call__(self, reason: str, error: DeliveryError, messages: list[dict[str, Any]]) -> None:
        if self.target is not None:
            self.target(reason, error, messages)


def _http_transport(config: Any, events: Events) -> HTTPTransport:
    auth = None
    if config.oauth is not None:
        server = config.oauth.auth_server or oauth_server_for(config.host)
        auth = OAuth(config.oauth, auth_server=server)
    return HTTPTransport(
        config.write_key, url=config.host + config.path, timeout=config.request_timeout,
        gzip=config.gzip, session_options=config.network, auth=auth, events=events,
    )


def _spool_factory(
    directory: str, max_bytes: int, sync_interval: float | None, shared_group: bool
) -> Callable[[], MessageQueue]:
    # Called again in a forked child: each process gets its own spool file.
    def make() -> MessageQueue:
        return SpoolQueue(
            directory, max_bytes=max_bytes, sync_interval=sync_interval,
            shared_group=shared_group,
        )

    return make
