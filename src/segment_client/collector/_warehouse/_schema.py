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
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from segment_client.collector._time import parse_iso

__all__ = [
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
# Column kinds (mapped to SQL types by each engine): text, bigint, float, boolean,
# timestamp.
_INT64 = 2**63


@lru_cache(maxsize=65536)
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


@lru_cache(maxsize=65536)
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


# One encoder for every value: `json.dumps` with options builds a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False).encode


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else _encode(value)
    return text[:MAX_TEXT]


def _scalar(value: Any) -> Any:
    """A JSON value as it is stored: scalars kept, lists and objects as JSON text."""
    kind = type(value)
    if kind is str:
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT]
    if kind is float and value - value == 0:
        return value
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
        text = _canonical(value)
        return (text, True) if text is not None else (None, False)
    return None, False  # boolean column, non-boolean value


@lru_cache(maxsize=65536)
def _column(prefix: str, key: str) -> str:
    return (f"{prefix}_{snake(key)}" if prefix else snake(key))[:MAX_NAME]


# The kind a JSON scalar's type stores as (ints past bigint and NaN checked apart).
_LEAF_KINDS: dict[type, str] = {str: "text", bool: "boolean", int: "bigint", float: "float"}

Columns = tuple[dict[str, Any], dict[str, str]]  # values by column, kinds by column


def flatten(data: Any, prefix: str = "") -> Columns:
    """An object's columns as stored: values and kinds, nested objects joined with `_`.

    Values are converted as `_scalar` does; a null creates no column; of two keys naming
    the same column the first wins.
    """
    values: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    if type(data) is dict or isinstance(data, Mapping):
        _flatten_into(data, prefix, values, kinds)
    return values, kinds


def _flatten_into(data: Mapping[Any, Any], prefix: str, values: dict[str, Any],
                  kinds: dict[str, str]) -> None:
    # The loader's hottest loop: JSON's own types are dispatched on `type()` first (an
    # isinstance() of an ABC costs more than the rest of a leaf's work).
    for key, value in data.items():
        name = _column(prefix, key if type(key) is str else str(key))
        cls = type(value)
        if cls is dict:
            if value:  # an empty object has no columns
                _flatten_into(value, name, values, kinds)
            continue
        if name in values:
            continue
        kind = _LEAF_KINDS.get(cls)
        if kind == "text":
            if len(value) > MAX_TEXT:
                value = value[:MAX_TEXT]
        elif kind == "float":
            if value - value != 0:  # NaN and infinities have no SQL form
                continue
        elif kind == "bigint":
            if not -_INT64 <= value < _INT64:
                value, kind = float(value), "float"  # past bigint, as a loader infers
        elif kind is None:
            if value is None:
                continue
            if isinstance(value, Mapping):
                if value:
                    _flatten_into(value, name, values, kinds)
                continue
            value = _scalar(value)
            kind = kind_of(value)
            if kind is None:
                continue
        values[name] = value
        kinds[name] = kind


def _timestamp(value: Any) -> dt.datetime | None:
    parsed = parse_iso(value)
    return parsed.astimezone(dt.timezone.utc) if parsed is not None else None


def _canonical(value: Any) -> str | None:
    """An ISO timestamp as every timestamp column holds it (UTC, milliseconds, Z).

    The common form (what the client and the collector write) is kept without parsing.
    """
    if (
        type(value) is str and len(value) == 24 and value[23] == "Z" and value[10] == "T"
        and value[19] == "." and value[4] == "-" and value[13] == ":"
        and value[:4].isdigit() and value[20:23].isdigit()
    ):
        return value
    parsed = _timestamp(value)
    return iso(parsed) if parsed is not None else None


@lru_cache(maxsize=4096)
def _corrected(received: str, sent: str, original: str) -> str:
    """Segment's device clock correction, receivedAt - (sentAt - originalTimestamp).

    Cached: the messages of one batch share all three timestamps more often than not.
    """
    r, s, o = _timestamp(received), _timestamp(sent), _timestamp(original)
    if r is None or s is None or o is None:
        return original
    return iso(r - (s - o))


def iso(value: dt.datetime) -> str:
    """UTC ISO 8601 with milliseconds and Z, the form every timestamp column holds."""
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _add(values: dict[str, Any], kinds: dict[str, str], columns: Columns) -> None:
    """Add columns to a row; a column already there (a standard one) wins."""
    more, more_kinds = columns
    if values.keys().isdisjoint(more):
        values.update(more)
        kinds.update(more_kinds)
        return
    for column, value in more.items():
        if column not in values:
            values[column] = value
            kinds[column] = more_kinds[column]


_TEXT_COMMON = frozenset({"id", "anonymous_id", "user_id"})


def _message_id(message: Mapping[str, Any], fallback: str) -> str:
    value = message.get("messageId")
    if value is None or value == "":
        return fallback
    return _text(value)


def _text_or_none(value: Any) -> str | None:
    if value is None:
        return None
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
    received = _canonical(received_at) or received_at
    original = _canonical(message.get("timestamp")) or received
    sent = _canonical(message.get("sentAt"))
    corrected = original if sent is None else _corrected(received, sent, original)
    common: dict[str, Any] = {"id": _message_id(message, fallback_id)}
    for column, value in (
        ("anonymous_id", _text_or_none(message.get("anonymousId"))),
        ("user_id", _text_or_none(message.get("userId"))),
    ):
        if value is not None:
            common[column] = value
    common["received_at"] = received
    if sent is not None:
        common["sent_at"] = sent
    common["timestamp"] = corrected
    common["original_timestamp"] = original
    common["uuid_ts"] = loaded_at
    common_kinds = {c: ("text" if c in _TEXT_COMMON else "timestamp") for c in common}

    def row(name: str, extra: dict[str, Any], *groups: Columns) -> Row:
        values = {**common, **extra}
        kinds = {**common_kinds, **dict.fromkeys(extra, "text")}
        for group in groups:
            _add(values, kinds, group)
        return Row(name, values, kinds)

    # Flattened once: a track's two rows share it.
    context = flatten(message.get("context"), "context")
    if kind == "track":
        event = message.get("event")
        event_name = event if isinstance(event, str) else _text_or_none(event)
        extra: dict[str, Any] = {}
        if event_name:
            extra = {"event": table_for_event(event_name), "event_text": event_name}
        rows = [row("tracks", extra, context)]
        if event_name:
            rows.append(row(table_for_event(event_name), extra,
                            flatten(message.get("properties")), context))
        return rows
    extra = {}
    if kind in ("page", "screen"):
        for column, key in (("name", "name"), ("category", "category")):
            value = _text_or_none(message.get(key))
            if value is not None:
                extra[column] = value
        rows = [row(table, extra, flatten(message.get("properties")), context)]
    elif kind == "group":
        group_id = _text_or_none(message.get("groupId"))
        extra = {"group_id": group_id} if group_id is not None else {}
        rows = [row(table, extra, flatten(message.get("traits")), context)]
    elif kind == "alias":
        previous = _text_or_none(message.get("previousId"))
        extra = {"previous_id": previous} if previous is not None else {}
        rows = [row(table, extra, context)]
    else:  # identify
        traits = flatten(message.get("traits"))
        rows = [row(table, extra, traits, context)]
        user_id = common.get("user_id")
        if user_id:
            users = {"id": user_id, "received_at": received, "uuid_ts": loaded_at}
            users_kinds = {"id": "text", "received_at": "timestamp", "uuid_ts": "timestamp"}
            _add(users, users_kinds, traits)
            rows.append(Row("users", users, users_kinds, upsert=True))
    return rows

