"""`RecordingTransport`: a `Transport` that records batches in memory, for tests.

Public as `segment_client.testing.RecordingTransport`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from segment_client._exceptions import APIError, DeliveryError
from segment_client._json import loads

__all__ = ["RecordingTransport"]


class RecordingTransport:
    """A `Transport` that records batches in memory instead of sending them.

    Thread-safe. `failures` is a script: each attempt pops its first item; an exception
    instance is raised, an int status raises `APIError(status)`, None succeeds. When the
    script is empty, attempts succeed (or all fail with `fail_always`).
    """

    def __init__(
        self,
        failures: Iterable[DeliveryError | int | None] = (),
        *,
        fail_always: DeliveryError | int | None = None,
    ) -> None:
        self._script = list(failures)
        self._fail_always = fail_always
        self._cond = threading.Condition()
        self.batches: list[list[dict[str, Any]]] = []
        self.attempts: list[tuple[int, int]] = []  # (messages, retry_count) per attempt
        self.timeouts: list[float | None] = []  # the time left given to each attempt
        self.closed = False

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every delivered message, in delivery order."""
        with self._cond:
            return [message for batch in self.batches for message in batch]

    def send(
        self, batch: Sequence[bytes], *, retry_count: int = 0, timeout: float | None = None
    ) -> None:
        with self._cond:
            self.attempts.append((len(batch), retry_count))
            self.timeouts.append(timeout)
            outcome = self._script.pop(0) if self._script else self._fail_always
            if outcome is None:
                self.batches.append([loads(data) for data in batch])
            self._cond.notify_all()
        if isinstance(outcome, int):
            raise APIError(outcome)
        if outcome is not None:
            raise outcome

    def close(self) -> None:
        self.closed = True

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> bool:
        """Block until `count` messages were delivered or `timeout` passed."""
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(map(len, self.batches)) >= count, timeout
            )

    def wait_for_attempts(self, count: int, timeout: float = 5.0) -> bool:
        """Block until `count` send attempts were made or `timeout` passed."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.attempts) >= count, timeout)
