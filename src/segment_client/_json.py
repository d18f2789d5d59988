"""JSON encoding of messages, including values JSON cannot hold.

A message is encoded exactly once, on the caller's thread; the bytes are what is queued,
measured against the size limit, and joined into request bodies. Encoding never fails on
a value: awkward values are converted (see `convert`), anything unknown becomes `str()`
with a warning on the `segment_client` logger naming where it was. A structure JSON
cannot hold, a circular reference or nesting deeper than `MAX_DEPTH`, is a
`MessageError` naming the path.

The common message costs one encoder call plus two `bytes.count` calls; the walks over
the value that name a path run only when something is wrong.
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

from ._exceptions import MessageError

__all__ = ["MAX_DEPTH", "convert", "dumps", "largest_field", "loads"]

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


class _Unknown(Exception):
    """Raised by the encoders' hook for a value `convert` does not know: the encoding
    is redone by the slow path, which knows where the value is."""


def _default(value: Any) -> Any:
    if isinstance(value, _KNOWN):
        return convert(value)
    raise _Unknown


_KNOWN = (
    dt.datetime, dt.date, dt.time, dt.timedelta, Decimal, uuid.UUID, PurePath, enum.Enum,
    set, frozenset, bytes, bytearray, memoryview,
)


def _sanitise(value: Any, path: str) -> Any:
    """Slow path: rebuild `value` with NaN/Infinity as null, keys JSON can hold, and
    unknown values as `str()` (warning with their path). Depth is already checked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if not isinstance(key, _JSON_KEY_TYPES):
                key = _sanitise(key, path) if isinstance(key, _KNOWN) else str(key)
                if not isinstance(key, _JSON_KEY_TYPES):
                    key = str(key)
            elif isinstance(key, float) and not math.isfinite(key):
                key = str(key)
            out[key] = _sanitise(item, _join(path, key))
        return out
    if isinstance(value, list | tuple):
        return [_sanitise(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, _KNOWN):
        return _sanitise(convert(value), path)
    logger.warning(
        "%s is a %s, which is not JSON-serialisable; sent as str()",
        path or "the value", type(value).__name__,
    )
    return str(value)


def _join(path: str, key: Any) -> str:
    """`path.key`, or `path["key"]` when the key is not a plain name."""
    text = str(key)
    if text.isidentifier():
        return f"{path}.{text}" if path else text
    return f"{path}[{text!r}]"


def _nesting_problem(value: Any) -> str | None:
    """What makes `value` unencodable (a cycle, or deeper than MAX_DEPTH), naming the
    path; None when neither. Recursion is bounded by MAX_DEPTH."""
    on_path: dict[int, str] = {}  # id -> path of the containers above the current one

    def walk(item: Any, path: str, depth: int) -> str | None:
        if isinstance(item, enum.Enum):
            item = item.value
        if isinstance(item, Mapping):
            children: Any = ((_join(path, k), v) for k, v in item.items())
        elif isinstance(item, list | tuple | set | frozenset):
            children = ((f"{path}[{i}]", v) for i, v in enumerate(item))
        else:
            return None
        where = _shorten(path) if path else "the message"
        if id(item) in on_path:
            above = _shorten(on_path[id(item)]) if on_path[id(item)] else "the message"
            return f"{where} refers back to {above} (a circular reference)"
        if depth > MAX_DEPTH:
            return (
                f"{where} is nested {depth} levels deep, over the limit of {MAX_DEPTH} "
                "(objects and arrays, the message being level 1)"
            )
        on_path[id(item)] = path
        for child_path, child in children:
            problem = walk(child, child_path, depth + 1)
            if problem is not None:
                return problem
        del on_path[id(item)]
        return None

    return walk(value, "", 1)


def _shorten(path: str, limit: int = 120) -> str:
    return path if len(path) <= limit else f"{path[:70]}...{path[-45:]}"


def _refuse_nesting(value: Any) -> MessageError:
    problem = _nesting_problem(value)
    return MessageError(problem or "the message cannot be encoded as JSON (nesting)")


# For `_deeper_than_limit`: every byte but quotes and brackets deleted, and both kinds
# of bracket made one, so that `()` pairs can be stripped level by level.
_PARENS = bytes.maketrans(b"{[}]", b"(())")
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'[]{}"')))


def _check_depth(value: Any, data: bytes) -> bytes:
    # Nesting needs an opening bracket per level, so with at most MAX_DEPTH of them in
    # the whole text (strings included) the depth is within the limit: two C-speed
    # counts for a normal message.
    if data.count(b"{") + data.count(b"[") > MAX_DEPTH and _deeper_than_limit(data):
        raise MessageError(_nesting_problem(value) or "the message is nested too deeply")
    return data


def _deeper_than_limit(data: bytes) -> bool:
    """Exact depth check of encoded JSON, for texts with many brackets (a list of 150
    objects), with bytes methods only (no Python loop over the text)."""
    if b"\\" in data:  # escaped backslashes and quotes are not string delimiters
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Quotes and brackets only: a string without brackets in it is now `""`.
    text = data.translate(_PARENS, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in text:  # strings holding brackets: keep what is outside the quotes
        text = b"".join(text.split(b'"')[::2])
    for _ in range(MAX_DEPTH):
        text = text.replace(b"()", b"")
        if not text:
            return False
    return True


def largest_field(message: Mapping[str, Any]) -> tuple[str, int]:
    """The path and encoded size of the biggest leaf or container below the top-level
    fields of `message` that holds most of it: for naming what makes a message too
    large. Slow (encodes parts again); for error messages only."""
    path, size = "", 0
    item: Any = message
    while True:
        if isinstance(item, Mapping):
            children = [(_join(path, k), v) for k, v in item.items()]
        elif isinstance(item, list | tuple):
            children = [(f"{path}[{i}]", v) for i, v in enumerate(item)]
        else:
            return path, size
        if not children:
            return path, size
        sizes = [(len(dumps(v)), p, v) for p, v in children]
        best, best_path, best_item = max(sizes, key=lambda entry: entry[0])
        # Descend while one child holds most of the bytes; stop where they spread out.
        if path and best * 2 < size:
            return path, size
        path, size, item = best_path, best, best_item


_encode = json.JSONEncoder(
    default=_default, allow_nan=False, ensure_ascii=False, separators=(",", ":")
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
        orjson.dumps, default=_default, option=orjson.OPT_PASSTHROUGH_DATACLASS
    )


def dumps(value: Any) -> bytes:
    """Encode `value` as compact UTF-8 JSON; never raises on awkward values.

    Raises `MessageError` naming the path for a circular reference or nesting deeper
    than `MAX_DEPTH` (never RecursionError).
    """
    if _fast_dumps is not None:
        try:
            # A copy of exactly the right size: orjson shrinks its output buffer in place,
            # and a queue of thousands of those shrunk blocks fragments the heap to ~4 KB
            # of RSS per message (measured) instead of ~0.7 KB.
            data = memoryview(_fast_dumps(value)).tobytes()
        except TypeError as exc:  # orjson.JSONEncodeError: let the stdlib path convert it
            if str(exc) == "Recursion limit reached":  # a cycle, or over 254 levels
                raise _refuse_nesting(value) from None
            if isinstance(exc.__cause__, _Unknown):
                return _slow_dumps(value)
        else:
            # _check_depth inlined: this runs for every message.
            if data.count(b"{") + data.count(b"[") > MAX_DEPTH and _deeper_than_limit(data):
                raise MessageError(_nesting_problem(value) or "the message is nested too deeply")
            return data
    try:
        return _check_depth(value, _encode(value).encode())
    except RecursionError:
        raise _refuse_nesting(value) from None
    except (ValueError, TypeError, _Unknown) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith("Circular reference"):
            raise _refuse_nesting(value) from None
    return _slow_dumps(value)


def _slow_dumps(value: Any) -> bytes:
    # NaN/Infinity (ValueError with allow_nan=False), a non-string key (TypeError) or an
    # unknown value: rare, so the walks over the whole value happen only here.
    problem = _nesting_problem(value)
    if problem is not None:
        raise MessageError(problem)
    # "replace": a lone surrogate in a str cannot be UTF-8; it becomes "?".
    return _encode(_sanitise(value, "")).encode("utf-8", "replace")


def loads(data: bytes | str) -> Any:
    """Decode JSON produced by `dumps`."""
    return json.loads(data)
