"""The consumer: batching triggers, delivery with retries, flush, close and fork.

One daemon thread per client and process, started on the first message. Callers only
`put` encoded bytes and, at most, set an Event; everything else happens here.

Every message accepted by `put` ends in exactly one of: delivered, or reported failed
(`on_error`, the log and the counters). That bookkeeping happens under `_lock`, so a
close that gives up at its deadline and a request that completes just after it cannot
both account for the same messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import _process, _uwsgi
from ._batch import MAX_REQUEST_BYTES, body_overhead
from ._events import (
    CallAfterCloseEvent,
    DeliveryFailureEvent,
    DrainedEvent,
    DropEvent,
    Events,
)
from ._exceptions import ClientClosedError, DeliveryError, QueueFullError
from ._forks import getpid
from ._json import loads
from ._log import DeliveryLog, describe, where
from ._messages import stock_ids
from ._queue import MessageQueue
from ._retry import RetryPolicy
from ._sender import Sender
from ._stats import ClientStats, DropCounts, FlushToken
from ._transports import Transport

__all__ = ["ClientStats", "Consumer", "ErrorHandler"]

logger = logging.getLogger("segment_client")

ErrorHandler = Callable[[DeliveryError, list[dict[str, Any]]], None]

THREAD_NAME = "segment_client.consumer"
#: Messages a batch may carry under a backlog (more waiting than `flush_at`): a burst
#: drains in fewer, larger requests. The request limit (500 KB) still applies, so with
#: typical ~0.7 KB events a backlog batch holds about 700. Chosen by measurement (bench/
#: batch_cap.py, docs/delivery.md): half the client CPU per event of 100 per request;
#: past it no further gain, while a burst's first request and each retry grow.
BACKLOG_BATCH_CAP = 1000
#: How long past its deadline close() waits for reports already under way on the
#: delivering thread (messages counted as finished whose on_error has not returned yet).
REPORT_GRACE_S = 1.0


class Consumer:
    """Owns the queue, the thread, delivery and the counters of one client.

    Thread-safe. `put` never blocks; `flush` and `close` block up to their timeout.
    """

    def __init__(
        self,
        *,
        queue_factory: Callable[[], MessageQueue],
        transport: Transport,
        write_key: str,
        request_timeout: float | None = None,
        flush_at: int,
        flush_interval: float,
        policy: RetryPolicy,
        on_error: ErrorHandler | None,
        sync_mode: bool = False,
        exit_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        events: Events | None = None,
    ) -> None:
        self._queue_factory = queue_factory
        self.events = events if events is not None else Events()
        self.log = DeliveryLog(clock=clock)
        self.flush_at = flush_at
        self.flush_interval = flush_interval
        self._on_error = on_error
        self._sync_mode = sync_mode
        self._clock = clock
        self.exit_timeout = exit_timeout
        #: Consumer-side middleware hook: batch -> aligned list (None = dropped).
        self.prepare: Callable[[list[bytes]], list[bytes | None]] | None = None
        self._max_bytes = MAX_REQUEST_BYTES - body_overhead(write_key)
        self._stop = threading.Event()  # set when the close deadline passes
        self.sender = Sender(
            transport, policy=policy, request_timeout=request_timeout, stop=self._stop,
            on_retry=self._count_retry, clock=clock, log=self.log,
        )
        self._init_state()
        _process.register(self)
        # What the queue found unreadable while opening (a spool's earlier files) is
        # reported now, before any thread runs.
        self._drain_losses()
        if not sync_mode and self.queue.depth():
            # A spool holds messages left by an earlier process: send them now.
            self._start()

    def _init_state(self) -> None:
        self._pid = getpid()
        self.queue = self._queue_factory()
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._wake = threading.Event()
        # Set by the thread as it ends. close() waits on it rather than on a join with a
        # timeout: under eventlet on Python 3.13 that join raises its Timeout.
        self._thread_done = threading.Event()
        self._stop = self.sender.stop = threading.Event()  # set when the close deadline passes
        self.log = self.sender.log = DeliveryLog(clock=self._clock)
        self._deadline: float | None = None  # the close deadline, once close() runs
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = False  # no new messages; the thread drains and exits
        self._close_started = False  # close() has run (or is running)
        self._closed = threading.Event()
        self._close_result = False
        self._flushes: list[FlushToken] = []
        self._in_flight: list[bytes] = []
        self._in_flight_done = 0
        # Counters, guarded by _lock (drops by their own). "queued" is derived:
        # finished + in flight + depth.
        self._finished = 0
        self._delivered = 0
        self._failed = 0
        self._retried = 0
        self._batches = 0
        self._dropped = DropCounts()
        # Queued, then dropped by consumer-side middleware (counted in _finished only).
        self._dropped_after_queue = 0
        # Held by whoever is taking and delivering a batch (the thread, an inline drain,
        # a sync_mode caller): one batch in flight at a time keeps order and counters exact.
        self._delivery_lock = threading.Lock()
        self._inline = False  # uWSGI without threads: callers send (see _put_inline)
        self._inline_since = 0.0
        self._left_in_queue = 0  # messages the queue keeps for the next process
        # Reports under way: counted (stats show them) but on_error not yet returned.
        # close() waits for them, so it never returns between a count and its report.
        self._reporting = 0

    def reset_after_fork(self) -> None:
        """In a forked child: fresh state (called by `_process` and by a pid check)."""
        # The child inherits copies of the parent's queue and locks (possibly held by a
        # thread that does not exist here). The parent sends its own messages; the child
        # starts empty so nothing is sent twice.
        self.events.after_fork()
        self._init_state()

    def close_at_exit(self) -> None:
        """A close bounded by `exit_timeout`, unless closed already or from another
        process (called by `_process` at interpreter exit)."""
        if self._pid == getpid() and not self._close_started:
            self.close(self.exit_timeout)

    # -- caller side ---------------------------------------------------------------

    def put(self, data: bytes, message: dict[str, Any]) -> bool:
        """Queue one encoded message; never blocks. False when it was dropped."""
        if self._pid != getpid():
            self.reset_after_fork()
        if self._closing:
            if self.events.call_after_close:
                self.events.emit("call_after_close", CallAfterCloseEvent(message))
            self.drop("closed", ClientClosedError("the client is closed"), [message])
            return False
        if self._sync_mode:
            return self._send_now(data)
        depth = self.queue.put(data)
        if not depth:
            reason, text = self.queue.rejection()
            self.drop(reason, QueueFullError(text), [message])
            return False
        if self._thread is None and not self._inline:
            self._start()
        if self._inline:
            self._put_inline(depth)
            return True
        if (depth == 1 or depth >= self.flush_at) and not self._wake.is_set():
            self._wake.set()
        return True

    def drop(self, reason: str, error: DeliveryError, messages: list[dict[str, Any]]) -> None:
        """Count and report messages that were never queued."""
        self._dropped.add(reason, len(messages))
        # A flood of drops (queue full under an outage) is summarised in the log;
        # on_error, the events and the counters still see every message.
        self.log.dropped(reason, len(messages), describe(error))
        if self.events.drop:
            self.events.emit("drop", DropEvent(reason, len(messages), error, messages))
        self._report(error, messages)

    def _drain_losses(self) -> None:
        """Account for messages the queue lost on its own (a spool's unreadable data).

        Called on the delivering thread, outside `_lock`.
        """
        for loss in self.queue.losses():
            count = loss.count
            with self._lock:
                self._reporting += 1
                if loss.queued:
                    # They were counted as queued: they finish as failed (like _finish).
                    self._mark_failed_flushes(count)
                    self._failed += count
            try:
                if not loss.queued:
                    self._dropped.add(loss.reason, count)
                self.log.lost(count, describe(loss.error))
                self._report(loss.error, [], count)
            finally:
                with self._lock:
                    if loss.queued:
                        self._finished += count
                    self._reporting -= 1
                    self._progress.notify_all()

    def _count_retry(self, count: int) -> None:
        with self._lock:
            self._retried += count

    def drop_quietly(self, reason: str) -> None:
        """Count a message not sent on purpose (send=False): no log, no on_error."""
        self._dropped.add(reason)
        if self.events.drop:
            self.events.emit("drop", DropEvent(reason, 1))

    def request_close(self) -> None:
        """Stop accepting messages and let the thread drain and exit; never blocks."""
        self._closing = True
        self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._inline:
                return
            if _uwsgi.threads_unavailable():
                self._inline = True
                logger.warning(
                    "uWSGI is running without --enable-threads, so the "
                    "background sender cannot run. Messages are sent from the calling "
                    "thread instead (every flush_at messages or flush_interval seconds, "
                    "and by client.flush()). Set `enable-threads = true` in the uWSGI "
                    "config, or call client.flush() at the end of each request."
                )
                return
            thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            try:
                thread.start()
            except RuntimeError:
                # No threads at interpreter shutdown: close() drains on its own thread.
                logger.warning("could not start the consumer thread")
                return
            self._thread = thread
            _process.close_with_multiprocessing(self)

    def _put_inline(self, depth: int) -> None:
        # No thread can run (uWSGI without threads): the caller sends when a batching
        # trigger is due, within exit_timeout in all, so a request never hangs long.
        now = self._clock()
        if depth == 1:
            self._inline_since = now
        if depth >= self.flush_at or now - self._inline_since >= self.flush_interval:
            self._drain_inline(now + self.exit_timeout)

    def _send_now(self, data: bytes) -> bool:
        # sync_mode: the caller's thread delivers, one request at a time per client so the
        # counters and order stay consistent.
        with self._delivery_lock:
            with self._lock:
                self._in_flight = [data]
                self._in_flight_done = 0
            self._deliver([data], deadline=None)
        return True

    # -- consumer thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._run_batches()
        finally:
            self._thread_done.set()

    def _run_batches(self) -> None:
        try:
            stock_ids()
            while self._wait_for_trigger():
                with self._delivery_lock:
                    batch = self._take()
                    if batch:
                        self._deliver(batch, deadline=self._deadline)
                # The callers' next ids, made here rather than in a call (see stock_ids).
                stock_ids()
        except Exception:  # a bug here must not pass silently
            logger.exception("the consumer thread crashed")

    def _wait_for_trigger(self) -> bool:
        """Wait until a batch is due (False: the thread should exit)."""
        queue = self.queue
        first_seen: float | None = None
        while True:
            if self._stop.is_set():
                return False
            self._drain_losses()
            depth = queue.depth()
            if depth == 0:
                if self._closing:
                    return False
                first_seen = None
                self._wake.clear()
                # Re-check after clear: a put between depth() and clear() set the event
                # before we cleared it.
                if queue.depth() == 0 and not self._closing:
                    self._wake.wait()
                continue
            if depth >= self.flush_at or self._flushes or self._closing:
                return True
            now = self._clock()
            if first_seen is None:
                first_seen = now
            remaining = first_seen + self.flush_interval - now
            if remaining <= 0:
                return True
            self._wake.clear()
            if queue.depth() < self.flush_at and not self._flushes and not self._closing:
                self._wake.wait(remaining)

    def _take(self) -> list[bytes]:
        """Take the next batch and mark it in flight. Call with _delivery_lock held."""
        with self._lock:
            if self._stop.is_set():
                return []
            batch = self.queue.take(self._batch_size(), self._max_bytes)
            self._in_flight = batch
            self._in_flight_done = 0
        self._drain_losses()
        return batch

    def _batch_size(self) -> int:
        """How many messages the next batch may carry: `flush_at`, or under a backlog
        (more than `flush_at` waiting) all that wait, up to `BACKLOG_BATCH_CAP`."""
        flush_at = self.flush_at
        depth = self.queue.depth()
        if depth <= flush_at:
            return flush_at
        return max(flush_at, min(depth, BACKLOG_BATCH_CAP))

    def _deliver(self, batch: list[bytes], deadline: float | None) -> None:
        """Send the in-flight `batch` and account for every message of it."""
        # Consumer-side middleware: once per batch (not per attempt); None marks a
        # message it dropped (already reported). Aligned with `batch` so acks stay in order.
        prepared = batch if self.prepare is None else self._prepare(batch)
        parts = self.sender.deliver(
            prepared, deadline=deadline, queue_policy=self.queue.policy,
            closing=lambda: self._closing,
        )
        for part in parts:
            if part.kept:
                self._abandon()  # the queue keeps the rest for the next process
                return
            sent = [data for data in prepared[part.lo : part.hi] if data is not None]
            if part.poison and part.error is not None:
                for data in batch[part.lo : part.hi]:
                    self.queue.dead_letter(data, part.error)
            if not self._finish(batch[part.lo : part.hi], part.error, sent, part.poison):
                return  # a close gave up on these already
        with self._lock:
            self._in_flight = []
            self._in_flight_done = 0
        if self.queue.depth():
            self.log.tick()
        else:
            self.log.idle()
            if self.events.drained:
                with self._lock:
                    drained = DrainedEvent(self._delivered, self._failed)
                self.events.emit("drained", drained)

    def _finish(
        self, part: Sequence[bytes], error: DeliveryError | None,
        sent: Sequence[bytes] | None = None, poison: bool = False,
    ) -> bool:
        """Account for a finished part of the in-flight batch. False if already reported.

        `sent`: what was sent for `part` when consumer-side middleware dropped some of it
        (those are already in `dropped`; they leave `queued` here).
        """
        if sent is None:
            sent = part
        count = len(sent)
        with self._lock:
            if self._stop.is_set() and not self._in_flight:
                return False
            # Claim the messages (a close giving up now will not report them again)...
            self._reporting += 1
            self.queue.ack(len(part))
            self._in_flight_done += len(part)
            if not count:
                pass
            elif error is None:
                self._delivered += count
                self._batches += 1
            else:
                self._mark_failed_flushes(count)
                self._failed += count
            self._dropped_after_queue += len(part) - count
        # ...report outside the lock, and only then release flush() waiters, so that
        # on_error has run for every failed message by the time flush() returns.
        try:
            if error is not None:
                cause = describe(error, where(self.sender.transport))
                self.log.lost(count, cause, kind="poison" if poison else "failed")
                self._report(error, _decode(sent))
            elif count:
                self.log.delivered(count)
        finally:
            with self._lock:
                self._finished += len(part)
                self._reporting -= 1
                self._progress.notify_all()
        return True

    def _prepare(self, batch: list[bytes]) -> list[bytes | None]:
        assert self.prepare is not None
        try:
            prepared = self.prepare(batch)
        except Exception:  # a bug in the hook must not lose the batch
            logger.exception("consumer-side middleware failed; batch sent as is")
            return list(batch)
        return prepared if len(prepared) == len(batch) else list(batch)

    def _mark_failed_flushes(self, count: int) -> None:
        # Called under _lock before `count` messages are counted as failed.
        done = self._delivered + self._failed + self._dropped_after_queue
        for flush in self._flushes:
            if count and done < flush.target:
                flush.failed = True

    def _report(
        self, error: DeliveryError, messages: list[dict[str, Any]], count: int | None = None
    ) -> None:
        if self._on_error is not None:
            try:
                self._on_error(error, messages)
            except Exception:
                logger.exception("on_error raised; ignored")
        if self.events.delivery_failure:
            failure = DeliveryFailureEvent(
                error, messages, len(messages) if count is None else count
            )
            self.events.emit("delivery_failure", failure)

    # -- flush and close ------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is queued now and wait for it. True when all of it was delivered."""
        deadline = None if timeout is None else self._clock() + timeout
        if self._pid != getpid():
            self.reset_after_fork()
        with self._lock:
            pending = self.queue.depth() + len(self._in_flight) - self._in_flight_done
            if pending <= 0:
                return True
            done = self._delivered + self._failed + self._dropped_after_queue
            flush = FlushToken(done, done + pending)
            self._flushes.append(flush)
        try:
            if self._thread is None or not self._thread.is_alive():
                # No thread here (uWSGI without threads, interpreter shutdown): drain inline.
                self._drain_inline(deadline)
            self._wake.set()
            with self._lock:
                while self._finished < flush.target:
                    if self._left_in_queue:
                        return False  # closed; the rest stays in the spool
                    remaining = None if deadline is None else deadline - self._clock()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._progress.wait(remaining)
                return not flush.failed
        finally:
            with self._lock:
                self._flushes.remove(flush)

    def _drain_inline(self, deadline: float | None) -> None:
        """Deliver the queue on the calling thread (no consumer thread runs here).

        Checks the deadline between batches; each batch gets the time left.
        """
        wait = -1.0 if deadline is None else max(0.0, deadline - self._clock())
        if not self._delivery_lock.acquire(timeout=wait):
            return
        try:
            while deadline is None or self._clock() < deadline:
                batch = self._take()
                if not batch:
                    break
                self._deliver(batch, deadline)
        finally:
            self._delivery_lock.release()

    def close(self, timeout: float | None = None) -> bool:
        """Stop accepting messages, deliver what is queued, stop the thread.

        Returns by the deadline; whatever is still undelivered then is reported failed.
        True when every message queued at the call was delivered. Idempotent: a later
        call waits (up to its own timeout) for the first and returns its result.
        """
        deadline = None if timeout is None else self._clock() + timeout
        if self._pid != getpid():
            self.reset_after_fork()
        with self._lock:
            first = not self._close_started
            self._close_started = True
            self._closing = True
            if first:
                self._deadline = deadline
            failed_before = self._failed
        self._wake.set()
        if not first:
            self._closed.wait(timeout)
            return self._close_result and self._closed.is_set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            left = None if deadline is None else max(0.0, deadline - self._clock())
            if self._thread_done.wait(left):
                thread.join()  # it has left its loop: this returns at once
            if thread.is_alive():
                # At the deadline the thread may be between counting a batch and
                # reporting it (the sender gives up at the same deadline).
                self._await_reports()
        if thread is None or not thread.is_alive():
            self._drain_inline(deadline)
        self._drain_losses()
        if self._pending():
            self._abandon()
        self.queue.close(None if deadline is None else max(0.0, deadline - self._clock()))
        self._drain_losses()
        self.sender.transport.close()
        with self._lock:
            self._close_result = self._failed == failed_before and not self._left_in_queue
        self._closed.set()
        return self._close_result

    def _await_reports(self) -> None:
        """Wait (at most REPORT_GRACE_S) for the reports under way on the thread."""
        end = self._clock() + REPORT_GRACE_S
        with self._lock:
            while self._reporting:
                remaining = end - self._clock()
                if remaining <= 0:
                    logger.warning("close: on_error still running; not waiting for it")
                    return
                self._progress.wait(remaining)

    def _pending(self) -> int:
        with self._lock:
            return self.queue.depth() + len(self._in_flight) - self._in_flight_done

    def _abandon(self) -> None:
        """At the close deadline: report every message not yet finished as failed.

        A queue whose policy keeps them at close keeps them instead (nothing is
        acknowledged): the next client on the same queue sends them.
        """
        if self.queue.policy.keep_on_close:
            self._leave_in_queue()
            return
        with self._lock:
            self._stop.set()
            self._wake.set()
            left = self._in_flight[self._in_flight_done :]
            self._in_flight = []
            self._in_flight_done = 0
            while True:
                more = self.queue.take(self.flush_at, self._max_bytes)
                if not more:
                    break
                self.queue.ack(len(more))
                left.extend(more)
            self._mark_failed_flushes(len(left))
            self._failed += len(left)
        if left:
            cause = self.log.cause
            error = ClientClosedError(
                f"{len(left)} message(s) not delivered before the close deadline"
                + (f" (delivery was failing: {cause})" if cause else "")
            )
            self.log.abandoned(len(left))
            self._report(error, _decode(left))
        with self._lock:
            self._finished += len(left)
            self._progress.notify_all()

    def _leave_in_queue(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            self._wake.set()
            left = self.queue.depth() + len(self._in_flight) - self._in_flight_done
            self._in_flight = []
            self._in_flight_done = 0
            self._left_in_queue = left
            self._mark_failed_flushes(left)
            self._progress.notify_all()  # flush() waiters stop waiting for these
        if left:
            self.log.abandoned(left, spooled=True)

    def stats(self) -> ClientStats:
        """A consistent snapshot of the counters."""
        dropped = self._dropped.snapshot()
        with self._lock:
            in_flight = len(self._in_flight) - self._in_flight_done
            depth = self.queue.depth()
            return ClientStats(
                queued=self._delivered + self._failed + in_flight + depth,
                delivered=self._delivered,
                failed=self._failed,
                retried=self._retried,
                dropped=dropped,
                queue_depth=depth,
                in_flight=in_flight,
                batches_sent=self._batches,
                spool_bytes=self.queue.disk_bytes(),
            )

    @property
    def thread(self) -> threading.Thread | None:
        """The consumer thread of this process, if started."""
        return self._thread


def _decode(batch: Sequence[bytes]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for data in batch:
        try:
            out.append(loads(data))
        except ValueError:
            out.append({"_undecodable": data.decode("utf-8", "replace")})
    return out
