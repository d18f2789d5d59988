"""The middleware chain: functions that see, change or drop each message before it is
encoded and queued, on the caller's thread."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["Middleware", "run_chain"]

logger = logging.getLogger("segment_client")

Message = dict[str, Any]
#: A middleware gets a message it may change and returns it, a new one, or None (drop).
Middleware = Callable[[Message], "Message | None"]


def run_chain(
    chain: tuple[Middleware, ...], message: Message
) -> tuple[Message | None, Exception | None]:
    """Run `chain` in order on a deep copy of `message`.

    Returns (message, None), (None, None) when a middleware dropped it, or
    (None, error) when one raised.
    """
    current: Message | None = copy.deepcopy(message)
    for middleware in chain:
        try:
            current = middleware(current)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - a raising middleware drops one message
            return None, exc
        if current is None:
            return None, None
    return current, None
