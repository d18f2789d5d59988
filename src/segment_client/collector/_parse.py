"""Parsing a request body into its messages and each message's original JSON text.

The batch array is walked with the stdlib's C scanner one element at a time, so every
message comes with its exact span in the body: the size check measures what the client
sent, and the store keeps that text without encoding the message again (the collector's
most expensive step otherwise). Pure functions; thread-safe.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["ParsedMessage", "parse_batch"]

_ws_match = re.compile(r"[ \t\n\r]*").match
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


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
    items: list[ParsedMessage] = []
    index = _skip(text, index + 1)
    if text[index : index + 1] == "]":
        return items, index + 1
    while True:
        value, end = _value(text, index)
        items.append((value, text[index:end]))
        index = _skip(text, end)
        char = text[index : index + 1]
        if char == ",":
            index = _skip(text, index + 1)
            continue
        if char == "]":
            return items, index + 1
        raise _fail(text, index, "',' or ']'")
