"""Segment's warehouse schema: which tables and columns a message becomes. Pure data.

- Type tables `identifies`, `tracks`, `pages`, `screens`, `groups`, `aliases`; one table
  per track event (the event name in snake_case) holding the event's properties; `users`
  upserted by `user_id` with the latest traits (no anonymous_id).
- Common columns: `id` (the messageId), `anonymous_id`, `user_id`, `received_at`,
  `sent_at`, `timestamp`, `original_timestamp`, `uuid_ts` (load time), and the context
  flattened to `context_<key>` columns (nested keys joined with `_`).
- Property and trait keys become snake_case columns (nested objects flattened with `_`),
  strings are cut at 512 characters, arrays are stored as JSON text.

Functions here never raise for any JSON object: a message of an unknown type has no rows.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KINDS",
    "MAX_TEXT",
    "Row",
    "coerce",
    "iso",
    "kind_of",
    "rows_for",
    "snake",
    "table_for_event",
]

MAX_TEXT = 512
# PostgreSQL's identifier limit; names are cut to it on both engines, so both agree.
MAX_NAME = 63
TYPE_TABLES = {
    "identify": "identifies", "track": "tracks", "page": "pages", "screen": "screens",
    "group": "groups", "alias": "aliases",
}
# Table names an event table must not take.
RESERVED_TABLES = frozenset({*TYPE_TABLES.values(), "users", "accounts"})
# Column kinds, mapped to SQL types by each engine.
KINDS = ("text", "bigint", "float", "boolean", "timestamp")
_COMMON = ("id", "anonymous_id", "user_id", "received_at", "sent_at", "timestamp",
           "original_timestamp", "uuid_ts")
_INT64 = 2**63


def snake(name: str) -> str:
    """A key or event name as Segment's warehouses name columns and tables.

    `productId` -> `product_id`, `Order Completed` -> `order_completed`,
    `HTTPStatus` -> `http_status`, `3d secure` -> `_3d_secure`.
    """
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    if not text:
        return "_"
    if text[0].isdigit():
        text = f"_{text}"
    return text[:MAX_NAME]


def table_for_event(event: str) -> str:
    """The table of one track event; an event named like a type table gets a suffix."""
    name = snake(event)
    if name in RESERVED_TABLES:
        name = f"{name}_event"
    return name[:MAX_NAME]


def kind_of(value: Any) -> str | None:
    """The column kind a value creates (None: a null creates no column)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint" if -_INT64 <= value < _INT64 else "float"
    if isinstance(value, float):
        return "float"
    return "text"


@dataclass
class Row:
    """One row to write: its table, its values by column and each column's kind.

    `upsert` rows (the users table) replace the columns they hold; others are inserted
    once per `id` (a repeated messageId is skipped, as Segment dedupes).
    """

    table: str
    values: dict[str, Any]
    kinds: dict[str, str]
    upsert: bool = False


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text[:MAX_TEXT]


def _scalar(value: Any) -> Any:
    """A JSON value as it is stored: scalars kept, lists and objects as JSON text."""
    if isinstance(value, (list, dict)):
        return _text(value)
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        return float(value)  # past bigint: a float column, as a loader would infer
    if isinstance(value, float) and value - value != 0:  # NaN and infinities have no SQL form
        return None
    return value


def coerce(value: Any, kind: str) -> tuple[Any, bool]:
    """`value` as a column of `kind` holds it, and whether it fitted (False: stored NULL).

    A column keeps the kind it was created with (as Segment's loaders do): a later value
    of another kind is converted when that loses nothing, else stored as NULL.
    """
    if value is None:
        return None, True
    if kind == "text":
        return (value if isinstance(value, str) else _text(value)), True
    if isinstance(value, bool):
        return (value, True) if kind == "boolean" else (None, False)
    if kind == "bigint":
        if isinstance(value, int):
            return value, True
        if isinstance(value, float) and value.is_integer():
            return int(value), True
        return None, False
    if kind == "float":
        return (float(value), True) if isinstance(value, (int, float)) else (None, False)
    if kind == "timestamp":
        parsed = _timestamp(value)
        return (iso(parsed), True) if parsed is not None else (None, False)
    return None, False  # boolean column, non-boolean value


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(column, value) pairs of an object, nested objects joined with `_`."""
    if not isinstance(data, Mapping):
        return
    for key, value in data.items():
        name = (f"{prefix}_{snake(str(key))}" if prefix else snake(str(key)))[:MAX_NAME]
        if isinstance(value, Mapping) and value:
            yield from flatten(value, name)
        elif isinstance(value, Mapping):
            continue  # an empty object has no columns
        else:
            yield name, value


def _timestamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def iso(value: dt.datetime) -> str:
    """UTC ISO 8601 with milliseconds and Z, the form every timestamp column holds."""
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


class _Builder:
    def __init__(self, table: str) -> None:
        self.row = Row(table, {}, {})

    def put(self, column: str, value: Any, kind: str | None = None) -> None:
        if column in self.row.values:  # a standard column wins over a same-named key
            return
        value = _scalar(value)
        kind = kind or kind_of(value)
        if kind is None or value is None:
            return
        self.row.values[column] = value
        self.row.kinds[column] = kind

    def extend(self, pairs: Iterator[tuple[str, Any]]) -> None:
        for column, value in pairs:
            self.put(column, value)


def _message_id(message: Mapping[str, Any], fallback: str) -> str:
    value = message.get("messageId")
    if value is None or value == "":
        return fallback
    return _text(value)


def rows_for(
    message: Mapping[str, Any], received_at: str, loaded_at: str, fallback_id: str
) -> list[Row]:
    """The rows one stored message becomes (type table, event table, users upsert).

    `received_at` and `loaded_at` are ISO timestamps; `fallback_id` names a message that
    has no messageId.
    """
    kind = message.get("type")
    table = TYPE_TABLES.get(kind) if isinstance(kind, str) else None
    if table is None:
        return []
    received = _timestamp(received_at)
    original = _timestamp(message.get("timestamp")) or received
    sent = _timestamp(message.get("sentAt"))
    # Segment corrects the device clock: timestamp = receivedAt - (sentAt - originalTimestamp).
    corrected = received - (sent - original) if received and sent and original else original

    def common(name: str) -> _Builder:
        builder = _Builder(name)
        builder.put("id", _message_id(message, fallback_id), "text")
        builder.put("anonymous_id", message.get("anonymousId"), "text")
        builder.put("user_id", message.get("userId"), "text")
        builder.put("received_at", iso(received) if received else received_at, "timestamp")
        builder.put("sent_at", iso(sent) if sent else None, "timestamp")
        builder.put("timestamp", iso(corrected) if corrected else None, "timestamp")
        builder.put("original_timestamp", iso(original) if original else None, "timestamp")
        builder.put("uuid_ts", loaded_at, "timestamp")
        return builder

    def with_context(builder: _Builder) -> _Builder:
        builder.extend(flatten(message.get("context"), "context"))
        return builder

    rows: list[Row] = []
    if kind == "track":
        event = message.get("event")
        event_name = event if isinstance(event, str) else _text(event)
        base = common("tracks")
        base.put("event", table_for_event(event_name) if event_name else None, "text")
        base.put("event_text", event_name, "text")
        with_context(base)
        rows.append(base.row)
        if event_name:
            own = common(table_for_event(event_name))
            own.put("event", table_for_event(event_name), "text")
            own.put("event_text", event_name, "text")
            own.extend(flatten(message.get("properties")))
            with_context(own)
            rows.append(own.row)
        return rows
    builder = common(table)
    if kind == "identify":
        builder.extend(flatten(message.get("traits")))
    elif kind in ("page", "screen"):
        builder.put("name", message.get("name"), "text")
        builder.put("category", message.get("category"), "text")
        builder.extend(flatten(message.get("properties")))
    elif kind == "group":
        builder.put("group_id", message.get("groupId"), "text")
        builder.extend(flatten(message.get("traits")))
    else:  # alias
        builder.put("previous_id", message.get("previousId"), "text")
    with_context(builder)
    rows.append(builder.row)
    user_id = message.get("userId")
    if kind == "identify" and user_id not in (None, ""):
        users = _Builder("users")
        users.put("id", user_id, "text")
        users.put("received_at", iso(received) if received else received_at, "timestamp")
        users.put("uuid_ts", loaded_at, "timestamp")
        users.extend(flatten(message.get("traits")))
        users.row.upsert = True
        rows.append(users.row)
    return rows


def common_columns() -> tuple[str, ...]:
    """The columns every type and event table has (when the message has the value)."""
    return _COMMON
