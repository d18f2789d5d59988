"""JSON encoding of messages, including values JSON cannot hold.

A message is encoded exactly once, on the caller's thread; the bytes are what is queued,
measured against the size limit, and joined into request bodies. Encoding never fails on
a value: awkward values are converted (see `convert`), anything unknown becomes `str()`
with a warning on the `segment_client` logger.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import functools
import json
import logging
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

__all__ = ["MAX_DEPTH", "convert", "dumps", "loads"]

logger = logging.getLogger("segment_client")

_JSON_KEY_TYPES = (str, int, float, bool, type(None))

#: How deeply objects and arrays may nest in one message, the message object being level
#: 1. The client refuses deeper messages at the call and the local collector refuses
#: them in a request: what the client accepts, the collector stores.
MAX_DEPTH = 100


def convert(value: Any) -> Any:
    """Return a JSON-native stand-in for `value` (the `default` hook of the encoder)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        if value.is_finite():
            # An integral Decimal stays an integer; others become the nearest float.
            return int(value) if value == value.to_integral_value() else float(value)
        return None
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        # Its value, encoded in turn: what orjson does natively and what the stdlib
        # already does for IntEnum/StrEnum, so both encoders send the same JSON.
        return value.value
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    logger.warning(
        "a value of type %s is not JSON-serialisable; sent as str()",
        type(value).__name__,
    )
    return str(value)


def _sanitise(value: Any) -> Any:
    """Slow path: rebuild `value` with NaN/Infinity as null and keys JSON can hold."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if not isinstance(key, _JSON_KEY_TYPES):
                key = convert(key)
                if not isinstance(key, _JSON_KEY_TYPES):
                    key = str(key)
            elif isinstance(key, float) and not math.isfinite(key):
                key = str(key)
            out[key] = _sanitise(item)
        return out
    if isinstance(value, list | tuple):
        return [_sanitise(item) for item in value]
    return _sanitise(convert(value))


_encode = json.JSONEncoder(
    default=convert, allow_nan=False, ensure_ascii=False, separators=(",", ":")
).encode

# orjson (the `segment-client[fast]` extra) encodes a typical event ~10x faster than the
# stdlib; it writes the same compact UTF-8 JSON, NaN/Infinity as null, and hands what it
# does not know to `convert`. Dataclasses go to `convert` too, as with the stdlib. What it
# refuses (non-string keys, ints beyond 64 bits, tz-aware times) falls back below.
_fast_dumps: Callable[[Any], bytes] | None
try:
    import orjson
except ImportError:  # not installed, or no wheel for this platform
    _fast_dumps = None
else:
    _fast_dumps = functools.partial(
        orjson.dumps, default=convert, option=orjson.OPT_PASSTHROUGH_DATACLASS
    )


def dumps(value: Any) -> bytes:
    """Encode `value` as compact UTF-8 JSON; never raises on awkward values."""
    if _fast_dumps is not None:
        try:
            # A copy of exactly the right size: orjson shrinks its output buffer in place,
            # and a queue of thousands of those shrunk blocks fragments the heap to ~4 KB
            # of RSS per message (measured) instead of ~0.7 KB.
            return memoryview(_fast_dumps(value)).tobytes()
        except TypeError:  # orjson.JSONEncodeError: let the stdlib path convert it
            pass
    try:
        return _encode(value).encode()
    except (ValueError, TypeError):
        # NaN/Infinity (ValueError with allow_nan=False) or a non-string key (TypeError):
        # rare, so the walk over the whole value happens only here.
        # "replace": a lone surrogate in a str cannot be UTF-8; it becomes "?".
        return _encode(_sanitise(value)).encode("utf-8", "replace")


def loads(data: bytes | str) -> Any:
    """Decode JSON produced by `dumps`."""
    return json.loads(data)
