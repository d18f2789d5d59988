"""Parsing a request body into its messages and each message's original JSON text.

The batch array is walked with the stdlib's C scanner one element at a time, so every
message comes with its exact span in the body: the size check measures what the client
sent, and the store keeps that text without encoding the message again (the collector's
most expensive step otherwise). Pure functions; thread-safe.

With orjson installed (the `fast` extra), `loads_fast` decodes a whole body about three
times faster; the collector then stores each message's compact re-encoding and falls
back to `parse_batch` whenever the exact sizes as sent could matter (see `_server.py`)
or orjson refuses what the stdlib accepts (NaN, integers beyond 64 bits, a BOM).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["ParsedMessage", "dumps_fast", "loads_fast", "parse_batch"]

try:
    import orjson
except ImportError:  # the stdlib parser below does everything, only slower
    orjson = None  # type: ignore[assignment]

loads_fast: Any = None if orjson is None else orjson.loads
dumps_fast: Any = None if orjson is None else orjson.dumps

_ws_match = re.compile(r"[ \t\n\r]*").match
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_BLANK = frozenset(" \t\n\r")


def _skip(text: str, index: int) -> int:
    """The index of the first non-whitespace character at or after `index`."""
    return _ws_match(text, index).end()  # type: ignore[union-attr]  # `*` always matches

ParsedMessage = tuple[Any, str]  # (the decoded value, its JSON text in the body)


def _fail(text: str, index: int, expected: str) -> ValueError:
    line = text.count("\n", 0, index) + 1
    column = index - text.rfind("\n", 0, index)
    return ValueError(f"expected {expected} at line {line} column {column} (char {index})")


def _value(text: str, index: int) -> tuple[Any, int]:
    try:
        return _scan(text, index)  # type: ignore[no-any-return]
    except StopIteration:
        raise _fail(text, index, "a value") from None


def parse_batch(text: str) -> tuple[dict[str, Any], list[ParsedMessage] | None]:
    """Parse a JSON object; its `batch` array (if any) comes back element by element.

    Returns the object's other members, and the batch's elements with their texts (None
    when there is no `batch` array). Raises ValueError on malformed JSON.
    """
    index = _skip(text, 0)
    if text[index : index + 1] != "{":
        value, end = _value(text, index)
        if _skip(text, end) != len(text):
            raise _fail(text, _skip(text, end), "the end of the body")
        raise TypeError(type(value).__name__)
    index = _skip(text, index + 1)
    members: dict[str, Any] = {}
    items: list[ParsedMessage] | None = None
    if text[index : index + 1] == "}":
        index += 1
    else:
        while True:
            if text[index : index + 1] != '"':
                raise _fail(text, index, "a property name in double quotes")
            key, index = _value(text, index)
            index = _skip(text, index)
            if text[index : index + 1] != ":":
                raise _fail(text, index, "':'")
            index = _skip(text, index + 1)
            if key == "batch" and text[index : index + 1] == "[":
                items, index = _array(text, index)
            else:
                members[key], index = _value(text, index)
            index = _skip(text, index)
            char = text[index : index + 1]
            if char == ",":
                index = _skip(text, index + 1)
                continue
            if char == "}":
                index += 1
                break
            raise _fail(text, index, "',' or '}'")
    if _skip(text, index) != len(text):
        raise _fail(text, _skip(text, index), "the end of the body")
    return members, items


def _array(text: str, index: int) -> tuple[list[ParsedMessage], int]:
    # The hot loop of the collector: one C scan per element. Compact bodies (what every
    # client sends) take the fast branch; whitespace falls back to the regex skip.
    items: list[ParsedMessage] = []
    append = items.append
    scan = _scan
    index = _skip(text, index + 1)
    if text[index : index + 1] == "]":
        return items, index + 1
    while True:
        try:
            value, end = scan(text, index)
        except StopIteration:
            raise _fail(text, index, "a value") from None
        append((value, text[index:end]))
        char = text[end : end + 1]
        if char == ",":
            index = end + 1
            if text[index : index + 1] in _BLANK:
                index = _skip(text, index)
            continue
        if char == "]":
            return items, end + 1
        index = _skip(text, end)
        char = text[index : index + 1]
        if char == ",":
            index = _skip(text, index + 1)
            continue
        if char == "]":
            return items, index + 1
        raise _fail(text, index, "',' or ']'")
