"""Pure functions that cut batches out of a sequence of encoded messages.

No threads, no I/O: the consumer and every queue implementation use these to decide how
many messages the next request carries, so the limits live in one place.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._json import dumps

__all__ = [
    "MAX_BATCH_MESSAGES",
    "MAX_MESSAGE_BYTES",
    "MAX_REQUEST_BYTES",
    "body_overhead",
    "body_tail",
    "build_body",
    "build_head",
    "count_fitting",
]

# The Segment HTTP Tracking API's limits (DESIGN.md section 3).
MAX_MESSAGE_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500

_PREFIX = b'{"batch":['
# sentAt is always "YYYY-MM-DDTHH:MM:SS.mmmZ": 24 characters.
_SENT_AT_LEN = 24


def body_overhead(write_key: str) -> int:
    """Bytes of a request body that are not messages or the commas between them."""
    suffix = build_body([], "x" * _SENT_AT_LEN, write_key)
    return len(suffix)


def build_body(messages: Iterable[bytes], sent_at: str, write_key: str) -> bytes:
    """Join encoded messages into a `/v1/batch` body without re-encoding them."""
    return build_head(messages) + body_tail(sent_at, write_key)


def build_head(messages: Iterable[bytes]) -> bytes:
    """The part of a body that is the same on every attempt: `{"batch":[...],`.

    `sentAt` changes per attempt, so it sits in the tail: a retry rebuilds (and
    compresses) only the tail, never the messages.
    """
    return b"".join((_PREFIX, b",".join(messages), b"],"))


def body_tail(sent_at: str, write_key: str) -> bytes:
    """The rest of a body after `build_head`: `"sentAt":...,"writeKey":...}`."""
    return dumps({"sentAt": sent_at, "writeKey": write_key})[1:]


def count_fitting(sizes: Iterable[int], max_count: int, max_bytes: int) -> int:
    """How many leading messages of `sizes` fit in `max_count` messages and `max_bytes`.

    `max_bytes` is the room for messages and their separating commas (the request limit
    minus `body_overhead`). At least one message is always taken when there is one, since
    each message is already known to be under the per-message limit.
    """
    total = -1  # n messages need n - 1 commas
    count = 0
    for size in sizes:
        total += size + 1
        if count and (count >= max_count or total > max_bytes):
            break
        count += 1
        if count >= max_count:
            break
    return count
