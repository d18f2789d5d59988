"""A fake clock for retry and deadline logic: waits advance it instead of sleeping."""

from __future__ import annotations

import threading

from segment_client import Client

__all__ = ["DEADLINE_MARGIN_S", "FakeClock"]

#: How far past its deadline a flush or close may return in a test: loose on purpose,
#: the point being "not 10x", not precision on a loaded machine.
DEADLINE_MARGIN_S = 3.0


class FakeClock:
    """Replaces a client's clock and its sender's wait between attempts.

    `waits` records every wait asked for, in order; a wait returns at once (True when
    the client is closing, as the real one would), and moves `now` forward.
    Thread-safe.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def install(self, client: Client) -> FakeClock:
        consumer = client._consumer
        sender = consumer.sender

        def pause(seconds: float) -> bool:
            with self._lock:
                self.waits.append(seconds)
                self.now += seconds
            return sender.stop.is_set()

        consumer._clock = sender._clock = self
        sender.pause = pause  # type: ignore[method-assign]
        return self
