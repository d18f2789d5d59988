"""What the library tells its logger about delivery, summarised so a person can act on it.

One WARNING when delivery starts failing (the cause in plain words), one INFO when it
recovers, losses at ERROR with their count and cause, and retry chatter at DEBUG. Losses
are summarised: the first loss of a window is logged at once, later ones within
`interval` seconds are added up and written as one line when the window ends, the queue
drains, delivery recovers or the client closes. So an outage that loses 1,000 messages
in 10 batches is a handful of lines, not one per batch.

Messages carry no "segment_client:" prefix: the logger's name already says it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

from ._exceptions import APIError, DeliveryError

__all__ = ["DeliveryLog", "describe", "format_duration", "host_port", "where"]

logger = logging.getLogger("segment_client")

#: Seconds over which losses (and drops of one reason) are added up into one line.
SUMMARY_INTERVAL_S = 60.0
# How much of a collector's answer a log line quotes.
_BODY_CHARS = 200


def host_port(url: str) -> str:
    """`host:port` of `url`, the port made explicit ("api.segment.io:443")."""
    parts = urlsplit(url)
    host = parts.hostname or parts.netloc or url
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{host}:{port}"


def describe(error: DeliveryError, where: str | None = None) -> str:
    """`error` in plain words; `where` ("host:port") names the collector of an HTTP answer.

    An HTTP answer reads "HTTP 503 from api.segment.io:443: <the collector's message>";
    other errors are their own text (the HTTP transport already words those plainly).
    """
    if isinstance(error, APIError):
        text = f"HTTP {error.status}"
        if where:
            text += f" from {where}"
        body = " ".join(error.body.split())
        if body:
            if len(body) > _BODY_CHARS:
                body = body[:_BODY_CHARS] + "..."
            text += f": {body}"
        return text
    return str(error) or type(error).__name__


def format_duration(seconds: float) -> str:
    """A short human duration: "0.25 s", "12 s", "3 min 5 s"."""
    if seconds < 10:
        return f"{seconds:.2g} s" if 0.01 <= seconds < 1 else f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(seconds + 0.5), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


class _Window:
    """Losses of one kind added up since the last line about them."""

    __slots__ = ("batches", "causes", "count", "last_line")

    def __init__(self) -> None:
        self.last_line = float("-inf")  # when a line about this kind was last written
        self.count = 0
        self.batches = 0
        self.causes: Counter[str] = Counter()


class DeliveryLog:
    """The summarising state machine behind the delivery log lines of one client.

    States: healthy, or failing since a time with a cause. Thread-safe (a lock guards
    the state; lines are written outside it). Never blocks beyond the logging handlers.
    `clock` is injected for tests; `interval` is the summary window in seconds.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = SUMMARY_INTERVAL_S,
        log: logging.Logger = logger,
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._log = log
        self._lock = threading.Lock()
        self._failing_since: float | None = None
        self._cause = ""
        self._last_warning = float("-inf")
        self._lost_while_failing = 0
        self._windows: dict[str, _Window] = {}

    @property
    def failing(self) -> bool:
        """Whether the last attempt failed (and no delivery happened since)."""
        return self._failing_since is not None

    @property
    def cause(self) -> str:
        """The cause of the current failure ("" when healthy)."""
        return self._cause if self._failing_since is not None else ""

    # -- attempts ---------------------------------------------------------------------

    def attempt_failed(
        self, cause: str, count: int, *, retry: int | None = None, wait: float | None = None
    ) -> None:
        """An attempt at a batch of `count` failed with a retryable `cause`.

        `retry`/`wait`: the retry about to happen and its wait in seconds (None when no
        retry follows). The first failure after a healthy period is a WARNING; the
        rest is DEBUG, except a new cause, a WARNING at most once per interval.
        """
        now = self._clock()
        with self._lock:
            newly = self._failing_since is None
            if newly:
                self._failing_since = now
                self._lost_while_failing = 0
            changed = not newly and cause != self._cause
            warn = newly or (changed and now - self._last_warning >= self._interval)
            self._cause = cause
            if warn:
                self._last_warning = now
        if newly:
            self._log.warning(
                "delivery is failing: %s; retrying, messages are kept meanwhile", cause
            )
        elif warn:
            self._log.warning("delivery is still failing, now: %s", cause)
        if retry is not None and wait is not None:
            self._log.debug(
                "batch of %d message(s) failed: %s; retry %d in %s",
                count, cause, retry, format_duration(wait),
            )
        else:
            self._log.debug("batch of %d message(s) failed: %s", count, cause)

    def delivered(self, count: int) -> None:
        """A batch of `count` was delivered: after a failure, one INFO line."""
        if not self.failing:  # the common case: no lock, no line
            return
        now = self._clock()
        with self._lock:
            since = self._failing_since
            if since is None:
                return
            self._failing_since = None
            self._cause = ""
            lost = self._lost_while_failing
            self._lost_while_failing = 0
        self.idle()  # what was lost during the outage is written before the recovery
        self._log.info(
            "delivery recovered after %s; %s",
            format_duration(now - since),
            f"{lost} message(s) were lost meanwhile" if lost else "nothing was lost",
        )

    # -- losses -----------------------------------------------------------------------

    def lost(self, count: int, cause: str, *, kind: str = "failed") -> None:
        """`count` messages of one batch were given up with `cause` (ERROR, summarised).

        `kind` separates the windows: "failed" for delivery, "poison" for messages
        isolated from their batch, "drop:<reason>" for drops.
        """
        if count <= 0:
            return
        now = self._clock()
        lines: list[tuple[str, tuple[object, ...]]] = []
        with self._lock:
            if self._failing_since is not None:
                self._lost_while_failing += count
            window = self._windows.setdefault(kind, _Window())
            ended = now - window.last_line >= self._interval
            if ended and not window.count:
                lines.append(_loss_line(kind, count, 1, cause, None))
            else:
                window.count += count
                window.batches += 1
                window.causes[cause] += 1
                if ended:  # this loss closes the window: one line for all of it
                    lines.append(self._take(window, kind, now))
            if ended:
                window.last_line = now
        for text, args in lines:
            self._log.error(text, *args)

    def dropped(self, reason: str, count: int, cause: str) -> None:
        """`count` messages were dropped for `reason` (ERROR, summarised per reason)."""
        self.lost(count, cause, kind=f"drop:{reason}")

    def tick(self) -> None:
        """Write the summaries whose window has ended (call between batches)."""
        self._write(due_only=True)

    def idle(self) -> None:
        """Write every pending summary now (the queue drained, or recovery, or close)."""
        self._write(due_only=False)

    def abandoned(self, count: int, *, spooled: bool = False) -> None:
        """At a close deadline `count` messages were not delivered: one ERROR with why.

        `spooled`: the queue (the on-disk spool) keeps them for the next process: a
        WARNING.
        """
        self.idle()
        cause = self.cause
        why = (
            f"delivery was failing: {cause}" if cause
            else "they were still being sent (a slow collector, or too short a deadline)"
        )
        if spooled:
            self._log.warning(
                "%d message(s) not delivered before the close; they stay in the queue and "
                "the next client on it sends them (%s)", count, why,
            )
        else:
            self._log.error("%d message(s) not delivered before the close deadline: %s",
                            count, why)

    def _write(self, *, due_only: bool) -> None:
        now = self._clock()
        lines: list[tuple[str, tuple[object, ...]]] = []
        with self._lock:
            for kind, window in self._windows.items():
                if window.count and (not due_only or now - window.last_line >= self._interval):
                    lines.append(self._take(window, kind, now))
                    window.last_line = now
        for text, args in lines:
            self._log.error(text, *args)

    def _take(self, window: _Window, kind: str, now: float) -> tuple[str, tuple[object, ...]]:
        """The summary line of `window`'s pending losses, emptying it (under _lock)."""
        (cause, _), *others = window.causes.most_common()
        if others:
            cause += f" (and {len(others)} other cause(s))"
        line = _loss_line(kind, window.count, window.batches, cause, now - window.last_line)
        window.count = window.batches = 0
        window.causes.clear()
        return line


def _loss_line(
    kind: str, count: int, batches: int, cause: str, over: float | None
) -> tuple[str, tuple[object, ...]]:
    """The text and arguments of one ERROR line about `count` lost messages."""
    if kind.startswith("drop:"):
        verb, per = f"dropped ({kind[5:]})", False
    elif kind == "poison":
        verb, per = "undeliverable, isolated from their batch", False
    else:
        verb, per = "not delivered", True
    if over is None:
        return "%d message(s) %s: %s", (count, verb, cause)
    if per:
        return (
            "%d more message(s) %s in %d batch(es) over the last %s: %s",
            (count, verb, batches, format_duration(over), cause),
        )
    return "%d more message(s) %s over the last %s: %s", (
        count, verb, format_duration(over), cause,
    )


def where(transport: object) -> str | None:
    """`host:port` of a transport with a `url` (the HTTP transport), else None."""
    url = getattr(transport, "url", None)
    return host_port(url) if isinstance(url, str) else None
