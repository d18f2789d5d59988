"""Decoding an ingest request: limits, compression, nesting, JSON, message texts.

Pure functions (no state; thread-safe). `decode` turns a body into its messages, each
with the JSON text to store, or raises `HttpError` naming what is wrong.

Hostile input is bounded: a body is refused before the stdlib parser sees it when it
nests deeper than the shared limit (`segment_client._json.MAX_DEPTH`, the message being
level 1) or its brackets do not pair up (orjson, when installed, stops by itself at
1,024 levels and each message's depth is checked after); a batch stops being parsed past
`MAX_BATCH_MESSAGES`; so work and memory stay a small multiple of the (at most 500 KB)
body. A lone surrogate (`"\\ud800"`, which UTF-8 cannot hold) is replaced by U+FFFD, as
Segment's API does, and the message kept. A `writeKey` inside a message is removed.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any

from segment_client._json import MAX_DEPTH

from ._http import Headers, HttpError
from ._parse import (
    TooManyItems,
    depth_exceeds,
    dumps_fast,
    fix_surrogates,
    has_surrogate_escape,
    loads_fast,
    nesting_refusal,
    parse_batch,
)
from ._validate import MESSAGE_TYPES

__all__ = [
    "INGEST_PATHS",
    "MAX_BATCH_MESSAGES",
    "MAX_MESSAGE_BYTES",
    "MAX_REQUEST_BYTES",
    "SINGLE_ROUTES",
    "KeyCheck",
    "decode",
]

# The Tracking API's limits: 32 KB per message (and per single-message request),
# 500 KB per batch request; both answered 400 "Exceed payload limit".
MAX_MESSAGE_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
# Messages per batch request (the wire format's limit; clients never send more).
MAX_BATCH_MESSAGES = 2500
SINGLE_ROUTES = {f"/v1/{kind}": kind for kind in MESSAGE_TYPES}
# analytics.js posts to one-letter routes (`/v1/t` for a track, ...; `/v1/b` a batch).
SINGLE_ROUTES.update({f"/v1/{kind[0]}": kind for kind in MESSAGE_TYPES})
INGEST_PATHS = ("/v1/batch", "/v1/import", "/v1/b", *SINGLE_ROUTES)
# Checks the write key of a parsed body: (headers, body object); raises HttpError.
KeyCheck = Callable[[Headers, dict[str, Any]], None]
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode




def decode(
    path: str, headers: Headers, body: bytes, check_key: KeyCheck,
    single: str | None = None,
) -> tuple[str | None, list[tuple[Any, str]]]:
    """One ingest request's messages, each with the JSON text to store.

    `single`: the body is one message of this type (default: from the path,
    `/v1/track` and the like; otherwise a batch). Returns (that type or None, the
    messages); raises HttpError naming what is wrong: size, encoding, nesting, JSON,
    message count. `check_key(headers, body_object)` runs once the body is parsed.
    """
    single = single or SINGLE_ROUTES.get(path)
    limit = MAX_MESSAGE_BYTES if single else MAX_REQUEST_BYTES
    if len(body) > limit:
        raise HttpError(400, f"Exceed payload limit: request is over {limit} bytes",
                        "too_large")
    data_bytes = _decompress(body, headers.get("Content-Encoding", ""))
    if len(data_bytes) > limit:
        raise HttpError(400, f"Exceed payload limit: request is over {limit} bytes",
                        "too_large")
    # orjson stops by itself at 1,024 levels (bounded); the fast path then checks
    # each message's depth. The stdlib parser gets only bodies scanned first.
    checked = None if single else _checked_fast(headers, data_bytes, check_key)
    if checked is None:
        # The message is level 1; in a batch body it sits two levels down.
        _check_nesting(nesting_refusal(data_bytes, MAX_DEPTH if single else MAX_DEPTH + 2))
        checked = _checked(headers, data_bytes, single, check_key)
    return single, checked


def _checked_fast(
    headers: Headers, data_bytes: bytes, check_key: KeyCheck
) -> list[tuple[Any, str]] | None:
    """A batch decoded by orjson, each message re-encoded compactly for storage.

    None when orjson is missing or refuses the body, and when a message could be over
    the size limit as sent (whitespace or escapes the compact form does not have):
    the exact path (`_checked`) then decides, with the same outcome and messages.
    """
    if loads_fast is None:
        return None
    try:
        data = loads_fast(data_bytes)
    except ValueError:  # orjson.JSONDecodeError; the stdlib path words the error
        return None
    if type(data) is not dict:
        return None
    items = data.get("batch")
    if type(items) is not list:
        return None
    check_key(headers, data)
    _check_count(len(items))
    context = data.get("context")
    if type(context) is not dict:
        context = None
    else:
        _check_context(context)
    for message in items:
        if type(message) is dict:
            if context is not None and "context" not in message:
                message["context"] = context  # batch-level context applies to each
            if "writeKey" in message:
                del message["writeKey"]  # a credential: never stored or served
    try:
        raws = list(map(dumps_fast, items))
    except TypeError:  # orjson.JSONEncodeError: nesting past 254 levels
        return None  # the exact path scans the body and words the refusal
    for raw in raws:
        # A message cannot nest deeper than it has openers (the usual case, in C).
        if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:
            _check_nesting(nesting_refusal(raw, MAX_DEPTH))
    sizes = list(map(len, raws))
    # Each message as sent is at most its compact size plus everything in the body
    # that is not a compact message (framing, whitespace, longer escapes).
    slack = max(len(data_bytes) - sum(sizes), 0)
    largest = max(sizes, default=0)
    if len(data_bytes) > MAX_MESSAGE_BYTES and largest + slack > MAX_MESSAGE_BYTES:
        return None
    return list(zip(items, [raw.decode() for raw in raws], strict=True))


def _checked(
    headers: Headers, data_bytes: bytes, single: str | None, check_key: KeyCheck
) -> list[tuple[Any, str]]:
    """The request's messages with their JSON texts as sent (stdlib parser)."""
    try:
        text = data_bytes.decode("utf-8-sig")
        if single:
            value, items = json.loads(text), None
            if not isinstance(value, dict):
                raise TypeError(type(value).__name__)
            data: dict[str, Any] = value
        else:
            data, items = parse_batch(text, MAX_BATCH_MESSAGES)
    except TooManyItems:
        raise _too_many() from None
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"the body is not valid UTF-8: {exc.reason} at byte "
                        f"{exc.start}", "invalid_encoding") from None
    except ValueError as exc:
        raise HttpError(400, f"malformed JSON: {exc}", "invalid_json") from None
    except TypeError as exc:
        raise HttpError(400, f"the body must be a JSON object, got {exc}") from None
    check_key(headers, data)
    if single:
        messages: list[tuple[Any, str | None]] = [(data, None)]
    elif items is None:
        raise HttpError(400, "the body needs a batch array: {\"batch\": [...]}")
    else:
        messages = list(items)
    surrogates = has_surrogate_escape(text)
    context = None if single else data.get("context")
    if isinstance(context, dict):
        _check_context(context)
        if surrogates:
            context, _ = fix_surrogates(context)
    checked: list[tuple[Any, str]] = []
    for index, (message, raw) in enumerate(messages):
        if isinstance(message, dict):
            if single and "type" not in message:
                message["type"] = single
                raw = None
            if isinstance(context, dict) and "context" not in message:
                message["context"] = context  # batch-level context applies to each
                raw = None
            if "writeKey" in message:
                del message["writeKey"]  # a credential: never stored or served
                raw = None
            if surrogates:
                # UTF-8 has no lone surrogates: U+FFFD instead, as Segment stores it.
                message, changed = fix_surrogates(message)
                if changed:
                    raw = None
        if raw is None:
            raw = _DUMPS(message)
        # len() counts characters; only a long text needs its exact UTF-8 size.
        if len(raw) * 4 > MAX_MESSAGE_BYTES and len(raw.encode()) > MAX_MESSAGE_BYTES:
            raise HttpError(
                400,
                f"Exceed payload limit: message {index} is {len(raw.encode())} bytes "
                f"(limit {MAX_MESSAGE_BYTES})",
                "too_large",
            )
        checked.append((message, raw))
    return checked


def _check_nesting(refusal: str | None) -> None:
    if refusal is None:
        return
    if refusal.startswith("malformed"):
        raise HttpError(400, refusal, "invalid_json")
    raise HttpError(400, f"a message nests objects and arrays deeper than the limit of "
                    f"{MAX_DEPTH} levels (the message being level 1)", "too_deep")


def _too_many() -> HttpError:
    return HttpError(400, f"Exceed payload limit: the batch holds more than "
                     f"{MAX_BATCH_MESSAGES} messages", "too_large")


def _check_count(count: int) -> None:
    if count > MAX_BATCH_MESSAGES:
        raise _too_many()


def _check_context(context: dict[str, Any]) -> None:
    # The batch-level context becomes each message's: level 2 of the message.
    if depth_exceeds(context, MAX_DEPTH - 1):
        raise HttpError(400, f"the batch context nests objects and arrays deeper than the "
                        f"limit of {MAX_DEPTH} levels (the message being level 1)",
                        "too_deep")


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise HttpError(415, f"unsupported Content-Encoding {encoding!r} (gzip or deflate)")
    # Bounded: a gzip bomb stops one byte past the request limit.
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, MAX_REQUEST_BYTES + 1)
    except zlib.error as exc:
        raise HttpError(400, f"body is not valid {encoding}: {exc}") from None
    return data
