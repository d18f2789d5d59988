"""Building and validating the six Segment message types.

Pure functions, run on the caller's thread. Each builder checks its arguments (raising
`MessageError` naming the field), stamps `messageId`, `timestamp` and `context.library`,
and returns a new dict: the caller's dicts are copied at the top level and never mutated
(they are encoded to bytes right after, which freezes their contents).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._exceptions import MessageError, MessageTooLargeError
from ._forks import getpid
from ._json import largest_field
from ._version import __version__

if TYPE_CHECKING:
    from dateutil import parser as _dateparser
else:
    # Bound by _import_dateparser() at the first string timestamp: dateutil's parser
    # costs a noticeable share of `import segment_client`, and most callers never pass a
    # string. After that a string timestamp pays no import, only a flag check.
    _dateparser = None
_dateparser_loaded = False


def _import_dateparser() -> None:
    global _dateparser, _dateparser_loaded
    from dateutil import parser as _dateparser

    _dateparser_loaded = True

__all__ = [
    "LIBRARY",
    "MAX_MESSAGE_ID_LENGTH",
    "Message",
    "build_alias",
    "build_group",
    "build_identify",
    "build_page",
    "build_screen",
    "build_track",
    "format_timestamp",
    "new_message_id",
    "now_timestamp",
    "stock_ids",
    "too_large_error",
]

Message = dict[str, Any]

LIBRARY_NAME = "segment-client-python"
LIBRARY: dict[str, str] = {"name": LIBRARY_NAME, "version": __version__}
# Segment dedupes on messageId and documents a 100-character limit for it.
MAX_MESSAGE_ID_LENGTH = 100

_urandom = os.urandom
_getpid = getpid  # os.getpid() without a system call per id (see _forks)
_time_ns = time.time_ns
# Message ids made per os.urandom call by a caller, the pool they wait in, and the pid
# that made them; the consumer tops the pool up to _ID_STOCK between batches.
_ID_BATCH = 128
_ID_STOCK = 2048
_id_pool: list[str] = []
_id_pid = -1
# The RFC 4122 variant digit for each random hex digit: 10xx in binary.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}

# (second, "YYYY-MM-DDTHH:MM:SS") for the current second: formatting the date part is
# the costly bit of a timestamp, and most calls share their second with the previous one.
_second_cache: tuple[int, str] = (-1, "")
# (millisecond, full timestamp) of the last call.
_ms_cache: tuple[int, str] = (-1, "")


def new_message_id() -> str:
    """Return a fresh random message id: UUID version 4 text, from `os.urandom`.

    The same as `str(uuid.uuid4())` at a fraction of the cost: ids are made in bulk from
    one `os.urandom` call and handed out by `list.pop()`, which is atomic. The consumer
    thread keeps the pool stocked between batches (`stock_ids`), so a caller rarely makes
    the system call itself (it also releases the GIL, inviting a thread switch in the
    middle of the call). Thread-safe. Fork-safe: a process never uses ids made in
    another (pid check).
    """
    if _id_pid == _getpid():
        try:
            return _id_pool.pop()
        except IndexError:
            pass
    return _refill_ids()


def stock_ids(minimum: int = _ID_STOCK) -> None:
    """Top the id pool up to `minimum` ids made in this process. Thread-safe; called by
    the consumer thread between batches, off the callers' path."""
    _own_pool()
    while len(_id_pool) < minimum:
        _id_pool.extend(_make_ids(minimum))


def _own_pool() -> None:
    global _id_pid
    pid = _getpid()
    if _id_pid != pid:
        _id_pool.clear()  # made in the parent before a fork: the parent uses them
        _id_pid = pid


def _refill_ids() -> str:
    _own_pool()
    ids = _make_ids(_ID_BATCH)
    # Two threads refilling at once both add fresh ids: nothing is handed out twice.
    _id_pool.extend(ids[1:])
    return ids[0]


def _make_ids(count: int) -> list[str]:
    raw = _urandom(16 * count).hex()
    variant = _VARIANT
    return [
        f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant[h[16]]}{h[17:20]}-{h[20:]}"
        for h in [raw[i : i + 32] for i in range(0, len(raw), 32)]
    ]


def now_timestamp() -> str:
    """Return the current UTC time as ISO 8601 with milliseconds and `Z`.

    Thread-safe: the caches are replaced by single assignments of immutable tuples.
    """
    global _ms_cache, _second_cache
    ms = _time_ns() // 1_000_000
    cached_ms, text = _ms_cache
    if cached_ms == ms:
        return text  # busy callers make many messages per millisecond
    second, milli = divmod(ms, 1000)
    cached_second, prefix = _second_cache
    if cached_second != second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_cache = (second, prefix)
    text = f"{prefix}.{milli:03d}Z"
    _ms_cache = (ms, text)
    return text


def format_timestamp(value: dt.datetime) -> str:
    """Format a datetime as UTC ISO 8601 with milliseconds and `Z` (naive means UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _timestamp(value: object) -> str:
    if value is None:
        return now_timestamp()
    if isinstance(value, dt.datetime):
        return format_timestamp(value)
    if isinstance(value, dt.date):
        midnight = dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
        return format_timestamp(midnight)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format_timestamp(dt.datetime.fromtimestamp(value, dt.timezone.utc))
    if isinstance(value, str):
        if not _dateparser_loaded:
            _import_dateparser()
        try:
            parsed = _dateparser.isoparse(value)
        except ValueError:
            try:
                parsed = _dateparser.parse(value)
            except (ValueError, OverflowError) as exc:
                raise MessageError(
                    f"timestamp: cannot parse {value!r} as a date and time"
                ) from exc
        return format_timestamp(parsed)
    raise MessageError(
        "timestamp must be a datetime, a date, an ISO 8601 string or epoch seconds, "
        f"got {type(value).__name__}"
    )


def _id(value: object, field: str) -> str | None:
    """An optional id: None or "" means absent; numbers become strings."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise MessageError(f"{field} must be a string or a number, got {type(value).__name__}")


def _required_id(value: object, field: str) -> str:
    result = _id(value, field)
    if result is None:
        raise MessageError(f"{field} is required")
    return result


def _mapping(value: object, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise MessageError(f"{field} must be a dict (mapping), got {type(value).__name__}")


def _optional_str(value: object, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MessageError(f"{field} must be a string, got {type(value).__name__}")


def _base(
    kind: str,
    context: object,
    timestamp: object,
    integrations: object,
    message_id: object,
) -> Message:
    if message_id is None:
        mid = new_message_id()
    else:
        mid = _required_id(message_id, "message_id")
        if len(mid) > MAX_MESSAGE_ID_LENGTH:
            raise MessageError(
                f"message_id must be at most {MAX_MESSAGE_ID_LENGTH} characters, "
                f"got {len(mid)}"
            )
    # The common call passes no context, timestamp or integrations: those branches skip
    # a function call each (this runs on every call, on the caller's thread).
    if context is None:
        ctx: dict[str, Any] = {"library": LIBRARY}
    else:
        ctx = _mapping(context, "context")
        # A new dict: the caller's context is never mutated.
        ctx = {**ctx, "library": LIBRARY} if ctx else {"library": LIBRARY}
    return {
        "type": kind,
        "messageId": mid,
        "timestamp": now_timestamp() if timestamp is None else _timestamp(timestamp),
        "context": ctx,
        "integrations": {} if integrations is None else _mapping(integrations, "integrations"),
    }


def _identity(msg: Message, user_id: object, anonymous_id: object) -> None:
    if anonymous_id is None and type(user_id) is str and user_id:
        msg["userId"] = user_id  # the common case, without two calls to _id
        return
    uid = _id(user_id, "user_id")
    aid = _id(anonymous_id, "anonymous_id")
    if uid is None and aid is None:
        raise MessageError("user_id or anonymous_id is required")
    if uid is not None:
        msg["userId"] = uid
    if aid is not None:
        msg["anonymousId"] = aid


def build_track(
    user_id: object,
    event: object,
    properties: object,
    context: object,
    timestamp: object,
    anonymous_id: object,
    integrations: object,
    message_id: object,
) -> Message:
    """Build a track message. Raises `MessageError` naming the bad field."""
    if not isinstance(event, str) or not event:
        raise MessageError(
            f"event must be a non-empty string, got {type(event).__name__}"
            if not isinstance(event, str)
            else "event must be a non-empty string, got ''"
        )
    props = _mapping(properties, "properties")
    msg = _base("track", context, timestamp, integrations, message_id)
    _identity(msg, user_id, anonymous_id)
    msg["event"] = event
    msg["properties"] = props
    return msg


def build_identify(
    user_id: object,
    traits: object,
    context: object,
    timestamp: object,
    anonymous_id: object,
    integrations: object,
    message_id: object,
) -> Message:
    """Build an identify message. Raises `MessageError` naming the bad field."""
    tr = _mapping(traits, "traits")
    msg = _base("identify", context, timestamp, integrations, message_id)
    _identity(msg, user_id, anonymous_id)
    msg["traits"] = tr
    return msg


def build_group(
    user_id: object,
    group_id: object,
    traits: object,
    context: object,
    timestamp: object,
    anonymous_id: object,
    integrations: object,
    message_id: object,
) -> Message:
    """Build a group message. Raises `MessageError` naming the bad field."""
    gid = _required_id(group_id, "group_id")
    tr = _mapping(traits, "traits")
    msg = _base("group", context, timestamp, integrations, message_id)
    _identity(msg, user_id, anonymous_id)
    msg["groupId"] = gid
    msg["traits"] = tr
    return msg


def _build_view(
    kind: str,
    user_id: object,
    category: object,
    name: object,
    properties: object,
    context: object,
    timestamp: object,
    anonymous_id: object,
    integrations: object,
    message_id: object,
) -> Message:
    cat = _optional_str(category, "category")
    nm = _optional_str(name, "name")
    props = _mapping(properties, "properties")
    msg = _base(kind, context, timestamp, integrations, message_id)
    _identity(msg, user_id, anonymous_id)
    if nm is not None:
        msg["name"] = nm
    if cat is not None:
        msg["category"] = cat
    msg["properties"] = props
    return msg


def build_page(
    user_id: object,
    category: object,
    name: object,
    properties: object,
    context: object,
    timestamp: object,
    anonymous_id: object,
    integrations: object,
    message_id: object,
) -> Message:
    """Build a page message. Raises `MessageError` naming the bad field."""
    return _build_view(
        "page", user_id, category, name, properties, context, timestamp, anonymous_id,
        integrations, message_id,
    )


def build_screen(
    user_id: object,
    category: object,
    name: object,
    properties: object,
    context: object,
    timestamp: object,
    anonymous_id: object,
    integrations: object,
    message_id: object,
) -> Message:
    """Build a screen message. Raises `MessageError` naming the bad field."""
    return _build_view(
        "screen", user_id, category, name, properties, context, timestamp, anonymous_id,
        integrations, message_id,
    )


def build_alias(
    previous_id: object,
    user_id: object,
    context: object,
    timestamp: object,
    integrations: object,
    message_id: object,
) -> Message:
    """Build an alias message. Raises `MessageError` naming the bad field."""
    prev = _required_id(previous_id, "previous_id")
    uid = _required_id(user_id, "user_id")
    msg = _base("alias", context, timestamp, integrations, message_id)
    msg["userId"] = uid
    msg["previousId"] = prev
    return msg


def too_large_error(message: Mapping[str, Any], size: int, limit: int) -> MessageTooLargeError:
    """The `MessageTooLargeError` for `message` (`size` bytes encoded), naming the field
    that holds most of it. Slow (encodes parts again): only for a refused message."""
    error = MessageTooLargeError(size, limit)
    path, field_size = largest_field(message)
    if path:
        error.args = (f"{error}; the largest field is {path} ({field_size} bytes)",)
    error.field = path  # type: ignore[attr-defined]
    return error
