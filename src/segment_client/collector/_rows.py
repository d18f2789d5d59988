"""What the store writes: the row types, one queued write, and building its rows.

Pure data and functions (no I/O); thread-safe by having no shared state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

__all__ = [
    "Listener",
    "RejectionRow",
    "StoreError",
    "StoredMessage",
    "StoredRow",
    "Write",
    "clean",
    "event_rows",
    "find_duplicates",
    "text_id",
]


# One accepted message, ready to insert: the parsed form, its JSON text, its violations.
# A plain tuple: the store handles ~100,000 of them a second.
StoredMessage = tuple[dict[str, Any], str, list[str]]


@dataclass(frozen=True)
class StoredRow:
    """One committed message as listeners see it (the `message` dict is shared: read it,
    never modify it)."""

    id: int
    received_at: str
    batch_id: str
    duplicate: bool
    message: dict[str, Any]
    violations: list[str]


Listener = Callable[[Sequence[StoredRow]], None]
# One rejection: (received_at, path, status, reason).
RejectionRow = tuple[str, str, int, str]


class StoreError(Exception):
    """A batch could not be committed (nothing of it was kept)."""


class Write:
    """One writer's batch in the group-commit queue."""

    __slots__ = ("batch_id", "done", "error", "messages", "received_at", "rejections",
                 "result", "rows")

    def __init__(self, batch_id: str | None, received_at: str,
                 messages: Sequence[StoredMessage], rejections: list[RejectionRow]) -> None:
        self.batch_id = batch_id
        self.received_at = received_at
        self.messages = messages
        self.rejections = rejections
        self.done = False
        self.error: BaseException | None = None
        self.result = (0, 0)
        self.rows: list[StoredRow] | None = None


def clean(text: str) -> str:
    """`text` as SQLite can store it: a lone surrogate (no UTF-8 form) becomes '?'."""
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def text_id(value: Any) -> str | None:
    return value if value is None or type(value) is str else str(value)


def find_duplicates(
    ids: list[str | None], seen: set[str], fresh: set[str]
) -> tuple[list[bool], int]:
    """Which ids were seen before (in the store or earlier in this commit); adds the
    new ones to `fresh`."""
    new = {message_id for message_id in ids if message_id is not None}
    if len(new) == len(ids) and seen.isdisjoint(new) and fresh.isdisjoint(new):
        # The usual case, checked in C: no id repeats within the batch or before.
        fresh |= new
        return [False] * len(ids), 0
    flags = []
    for message_id in ids:
        duplicate = message_id is not None and (message_id in seen or message_id in fresh)
        if message_id is not None:
            fresh.add(message_id)
        flags.append(duplicate)
    return flags, sum(flags)


def event_rows(write: Write, flags: list[bool], ids: list[str | None], first: int) -> Any:
    """The events rows of one batch. Columns built by comprehensions and zipped in C:
    cheaper than a tuple expression per row."""
    messages = write.messages
    count = len(messages)
    kinds = [message.get("type") for message, _, _ in messages]
    with_violations = any(violations for _, _, violations in messages)
    return zip(
        range(first, first + count),
        repeat(write.received_at),
        repeat(write.batch_id),
        flags,
        kinds,
        [
            message.get("event") if kind == "track" else None
            for (message, _, _), kind in zip(messages, kinds, strict=True)
        ],
        [text_id(message.get("userId")) for message, _, _ in messages],
        [text_id(message.get("anonymousId")) for message, _, _ in messages],
        ids,
        [json.dumps(v) if v else "[]" for _, _, v in messages]
        if with_violations else repeat("[]"),
        [text for _, text, _ in messages],
    )
