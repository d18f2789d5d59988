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

__all__ = [
    "ParsedMessage",
    "TooManyItems",
    "depth_exceeds",
    "dumps_fast",
    "fix_surrogates",
    "has_surrogate_escape",
    "loads_fast",
    "nesting_refusal",
    "parse_batch",
]

try:
    import orjson
except ImportError:  # the stdlib parser below does everything, only slower
    orjson = None  # type: ignore[assignment]

loads_fast: Any = None if orjson is None else orjson.loads
dumps_fast: Any = None if orjson is None else orjson.dumps

_ws_match = re.compile(r"[ \t\n\r]*").match
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_BLANK = frozenset(" \t\n\r")


# Everything but the bytes that shape nesting: brackets and (to find strings) quotes.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_FAST_PASSES = 16
_OPENERS = frozenset(b"[{")
_OPENER_OF = {ord("]"): ord("["), ord("}"): ord("{")}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def nesting_refusal(data: bytes, limit: int) -> str | None:
    """Why `data` (JSON) cannot be parsed safely: nesting past `limit` levels, or
    brackets that do not pair up; None when it may be parsed.

    Bounded work, linear in the body, whatever it holds: the body shrinks in C to its
    bracket skeleton (escapes, then everything but brackets and quotes, then strings
    are dropped), and each pass strips at least one level of innermost `[]`/`{}` pairs.
    A parser never sees a body it would recurse into without bound.
    """
    if len(data) < 2 * (limit + 1):
        return None  # each level takes two bytes at least
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    text = data.translate(None, _NOT_STRUCTURE)
    # Strings holding no bracket are adjacent quote pairs; when they all go this way,
    # every string was bracket-free (the leftmost quote can only pair with its neighbour).
    skeleton = text.replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = b"".join(text.split(b'"')[::2])
    # A few fast passes in C, each stripping one or two levels of innermost pairs: an
    # ordinary body (a dozen levels at most) is done here.
    reduced = skeleton
    for _ in range(min(_FAST_PASSES, limit // 2)):
        if not reduced:
            return None
        shorter = reduced.replace(b"[]", b"").replace(b"{}", b"")
        if len(shorter) == len(reduced):
            return "malformed JSON: brackets do not pair up"
        reduced = shorter
    if not reduced:
        return None
    # Deeper: one exact walk, which stops at the first level past the limit.
    stack: list[int] = []
    push, pop = stack.append, stack.pop
    for byte in skeleton:
        if byte in _OPENERS:
            push(byte)
            if len(stack) > limit:
                return f"objects and arrays nest deeper than the limit of {limit} levels"
        elif not stack or pop() != _OPENER_OF[byte]:
            return "malformed JSON: brackets do not pair up"
    if stack:
        return "malformed JSON: brackets do not pair up"
    return None


def depth_exceeds(value: Any, limit: int) -> bool:
    """True when `value` nests objects/arrays deeper than `limit` levels (itself level 1).

    Iterative, and stops at the limit: bounded work for any value."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children
                         if isinstance(child, dict | list))
    return False


def has_surrogate_escape(text: str) -> bool:
    """True when `text` (JSON) holds a `\\uD800`..`\\uDFFF` escape (maybe a lone
    surrogate, which UTF-8 cannot encode)."""
    return _SURROGATE_ESCAPE.search(text) is not None


def _fix_text(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text)


def fix_surrogates(value: Any) -> tuple[Any, bool]:
    """`value` with every lone surrogate (in keys and strings) replaced by U+FFFD, and
    whether anything changed. Decoded JSON only (dicts, lists, scalars)."""
    if isinstance(value, str):
        fixed = _fix_text(value)
        return fixed, fixed != value
    if isinstance(value, list):
        changed = False
        for index, item in enumerate(value):
            new, item_changed = fix_surrogates(item)
            if item_changed:
                value[index] = new
                changed = True
        return value, changed
    if isinstance(value, dict):
        changed = False
        for key in list(value):
            item, item_changed = fix_surrogates(value[key])
            new_key = _fix_text(key)
            if new_key != key:
                del value[key]
                changed = True
            if item_changed or new_key != key:
                value[new_key] = item
                changed = True
        return value, changed
    return value, False


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


def parse_batch(
    text: str, max_items: int | None = None
) -> tuple[dict[str, Any], list[ParsedMessage] | None]:
    """Parse a JSON object; its `batch` array (if any) comes back element by element.

    Returns the object's other members, and the batch's elements with their texts (None
    when there is no `batch` array). Raises ValueError on malformed JSON, and
    `TooManyItems` as soon as the batch holds more than `max_items` elements.
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
                items, index = _array(text, index, max_items)
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


class TooManyItems(ValueError):
    """A batch array longer than allowed (parsing stopped there)."""


def _array(text: str, index: int, max_items: int | None) -> tuple[list[ParsedMessage], int]:
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
        if max_items is not None and len(items) > max_items:
            raise TooManyItems(f"the batch holds more than {max_items} messages")
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
