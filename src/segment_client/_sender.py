"""One batch, from first attempt to outcome: retries, splits and poison isolation.

The sender knows nothing of threads, queues or counters. `Sender.deliver` attempts a
batch through the current transport and yields one `Part` per slice of it that is
finished, in order, so the consumer can account for each slice as soon as it is known:

- a 413 splits a batch in half and each half is sent on its own;
- a batch refused with a non-retryable 400, or whose connection the server drops on
  every attempt, is bisected until the messages at fault are found: each is yielded as
  a poison `Part` (one message), everything else is delivered. A batch of n with one
  poison message costs about 2 log2(n) extra requests;
- retries follow the `RetryPolicy` and never run past the deadline given; every wait
  is on the `stop` event, so a close interrupts it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ._exceptions import APIError, ClientClosedError, DeliveryError, TransportError
from ._log import DeliveryLog, describe, where
from ._queue import QueuePolicy
from ._retry import RetryPolicy
from ._transports import ConnectionDropped, Transport

__all__ = ["Part", "Sender"]

logger = logging.getLogger("segment_client")

# How long a queue that keeps retrying waits between rounds when the collector stays
# unreachable past the retry budget.
_KEEP_RETRYING_S = 30.0
_KEEP_RETRYING_MIN_S = 0.05
# A 400 for one of these statuses means "something in this batch is wrong".
_POISON_STATUSES = frozenset({400})


@dataclass(frozen=True)
class Part:
    """A finished slice `[lo, hi)` of a batch.

    `error` is None when delivered. `poison`: a single message found undeliverable by
    bisection (to be dead-lettered). `kept`: the queue keeps these messages for the next
    process (`QueuePolicy.keep_on_close`); the consumer stops delivering.
    """

    lo: int
    hi: int
    error: DeliveryError | None = None
    poison: bool = False
    kept: bool = False


class Sender:
    """Delivers one batch at a time through a replaceable transport. Thread-safe for
    `transport` replacement; `deliver` is called by one thread at a time."""

    def __init__(
        self,
        transport: Transport,
        *,
        policy: RetryPolicy,
        request_timeout: float | None,
        stop: threading.Event,
        on_retry: Callable[[int], None],
        clock: Callable[[], float] = time.monotonic,
        log: DeliveryLog | None = None,
    ) -> None:
        self.policy = policy
        self.log = log if log is not None else DeliveryLog(clock=clock)
        self.request_timeout = request_timeout
        self.stop = stop
        self._on_retry = on_retry
        self._clock = clock
        self._transport = transport

    def pause(self, seconds: float) -> bool:
        """Wait `seconds` between attempts; True when a close interrupted the wait.

        The one place the sender waits (tests replace it, with `_clock`, to drive
        retries on a fake clock).
        """
        return self.stop.wait(seconds)

    @property
    def transport(self) -> Transport:
        """The transport the next attempt uses."""
        return self._transport

    def replace_transport(self, transport: Transport) -> Transport:
        """Use `transport` from the next attempt on; returns the previous one.

        Not atomic between two callers (the client serialises them).
        """
        old, self._transport = self._transport, transport
        return old

    def deliver(
        self,
        batch: Sequence[bytes | None],
        *,
        deadline: float | None,
        queue_policy: QueuePolicy,
        closing: Callable[[], bool],
    ) -> Iterator[Part]:
        """Send `batch` (None marks a message already dropped) and yield its parts in
        order. `deadline` (on the sender's clock) bounds every attempt and wait."""
        todo = [(0, len(batch), False)]  # (lo, hi, probing: bisecting for poison)
        while todo:
            lo, hi, probing = todo.pop(0)
            send = [data for data in batch[lo:hi] if data is not None]
            if not send:
                yield Part(lo, hi)
                continue
            error, kept = self._attempts(send, deadline, queue_policy, closing, probing)
            if kept:
                yield Part(lo, hi, error, kept=True)
                return
            if error is None:
                yield Part(lo, hi)
                continue
            if isinstance(error, APIError) and error.status == 413 and len(send) > 1:
                logger.debug("413 for %d messages; splitting", len(send))
                todo[:0] = _halves(batch, lo, hi, probing)
                continue
            if _suspect(error) and not self.stop.is_set():
                if len(send) > 1:
                    logger.debug(
                        "batch of %d refused (%s); looking for the message at fault",
                        len(send), error,
                    )
                    todo[:0] = _halves(batch, lo, hi, True)
                    continue
                yield Part(lo, hi, error, poison=True)
                continue
            yield Part(lo, hi, error)

    def _attempts(
        self,
        part: list[bytes],
        deadline: float | None,
        queue_policy: QueuePolicy,
        closing: Callable[[], bool],
        probing: bool,
    ) -> tuple[DeliveryError | None, bool]:
        """Attempt until delivered or given up: (None or the final error, kept)."""
        policy = self.policy
        waits = policy.backoff_waits()
        retries = 0
        attempt = 0
        rate_limited = 0.0
        # At a close deadline a queue that keeps messages at close keeps this batch.
        keep = queue_policy.keep_on_close
        while True:
            if self.stop.is_set():
                closed = ClientClosedError("the client closed before the batch was delivered")
                return closed, False
            timeout = self.request_timeout
            if deadline is not None:
                left = deadline - self._clock()
                if left <= 0:
                    late = DeliveryError("the deadline passed before the batch was delivered")
                    return late, keep and closing()
                timeout = left if timeout is None else min(timeout, left)
            error = self._attempt(part, attempt, timeout)
            if error is None:
                return None, False
            if isinstance(error, _BrokenTransport) or (
                isinstance(error, APIError) and error.status == 413 and len(part) > 1
            ):
                return error, False
            if probing and isinstance(error, ConnectionDropped):
                return error, False  # bisecting: a drop means "look further in"
            if not policy.is_retryable(error):
                return error, False
            wait = policy.rate_limit_wait(error)
            if wait is not None:
                rate_limited += wait
                if rate_limited > policy.rate_limit_budget and not queue_policy.keep_retrying:
                    return error, False
            else:
                retries += 1
                if retries > policy.max_retries:
                    if not queue_policy.keep_retrying or isinstance(error, ConnectionDropped):
                        return error, False
                    if closing():
                        return error, queue_policy.keep_on_close
                    # The queue keeps the batch: retry slowly until the collector is back.
                    wait = max(_KEEP_RETRYING_MIN_S, min(_KEEP_RETRYING_S, policy.max_delay))
                else:
                    wait = next(waits)
            if deadline is not None:
                left = deadline - self._clock()
                if left <= 0:
                    return error, keep and closing()
                wait = min(wait, left)
            attempt += 1
            self._on_retry(len(part))
            self.log.attempt_failed(
                describe(error, where(self.transport)), len(part), retry=attempt, wait=wait
            )
            if self.pause(wait):
                return error, False

    def _attempt(
        self, part: list[bytes], retry_count: int, timeout: float | None
    ) -> DeliveryError | None:
        try:
            self._transport.send(part, retry_count=retry_count, timeout=timeout)
            return None
        except DeliveryError as exc:
            return exc
        except Exception as exc:  # a broken custom transport is reported, not fatal
            logger.exception("the transport raised unexpectedly")
            return _BrokenTransport(f"transport raised {type(exc).__name__}: {exc}")


class _BrokenTransport(TransportError):
    """A transport raised something else than a DeliveryError: a bug, not retried."""


def _suspect(error: DeliveryError) -> bool:
    """An error that may come from one bad message rather than from the collector."""
    if isinstance(error, APIError):
        return error.status in _POISON_STATUSES
    return isinstance(error, ConnectionDropped)


def _halves(
    batch: Sequence[bytes | None], lo: int, hi: int, probing: bool
) -> list[tuple[int, int, bool]]:
    # Split on the messages actually sent, so that a half is never empty.
    sent = [i for i in range(lo, hi) if batch[i] is not None]
    mid = sent[len(sent) // 2]
    return [(lo, mid, probing), (mid, hi, probing)]

