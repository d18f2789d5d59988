"""Checks one Segment message the way the Tracking API's contract describes it.

Pure functions; no I/O. `validate_message` returns human-readable reasons (empty when
the message is fine), each naming the field and what was expected. It runs once per
stored message, so the common case (a valid message) takes one pass over its keys.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

__all__ = ["MESSAGE_TYPES", "validate_message"]

MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")

_OBJECT = 1
_STRING = 2
_ID = 3
_TIME = 4
_FIELDS = {
    "context": _OBJECT,
    "integrations": _OBJECT,
    "properties": _OBJECT,
    "traits": _OBJECT,
    "messageId": _STRING,
    "event": _STRING,
    "name": _STRING,
    "category": _STRING,
    "groupId": _ID,
    "previousId": _ID,
    "userId": _ID,
    "anonymousId": _ID,
    "timestamp": _TIME,
    "sentAt": _TIME,
    "originalTimestamp": _TIME,
}
# The usual shape, checked by a regex first; anything else goes to fromisoformat.
_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:?\d\d)?\Z")


def _is_id(value: Any) -> bool:
    # The API takes string or number ids; an empty string is no id.
    return (isinstance(value, str) and value != "") or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def _valid_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if _TIME_RE.match(value):
        return True
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def validate_message(message: Any, expected_type: str | None = None) -> list[str]:
    """Reasons `message` would not be accepted; `expected_type` for single-message routes."""
    if not isinstance(message, dict):
        return [f"a message must be a JSON object, got {type(message).__name__}"]
    reasons: list[str] = []
    for name, value in message.items():
        kind = _FIELDS.get(name)
        if kind is None or value is None:
            continue
        if kind == _OBJECT:
            if not isinstance(value, dict):
                reasons.append(f"{name} must be an object, got {type(value).__name__}")
        elif kind == _STRING:
            if not isinstance(value, str):
                reasons.append(f"{name} must be a string, got {type(value).__name__}")
        elif kind == _ID:
            if not _is_id(value) and value != "":
                reasons.append(f"{name} must be a string, got {type(value).__name__}")
        elif not _valid_time(value):
            reasons.append(f"{name} must be an ISO 8601 date-time, got {value!r}")
    kind = message.get("type", expected_type)
    if kind not in MESSAGE_TYPES:
        reasons.append(f"type must be one of {', '.join(MESSAGE_TYPES)}, got {kind!r}")
    elif expected_type is not None and kind != expected_type:
        reasons.append(f"type {kind!r} sent to the /v1/{expected_type} route")
    if kind == "alias":
        if not _is_id(message.get("previousId")):
            reasons.append("alias needs previousId (a non-empty string)")
        if not _is_id(message.get("userId")):
            reasons.append("alias needs userId (a non-empty string)")
    elif not _is_id(message.get("userId")) and not _is_id(message.get("anonymousId")):
        reasons.append("userId or anonymousId is required (a non-empty string)")
    if kind == "track" and not (isinstance(message.get("event"), str) and message["event"]):
        reasons.append("track needs event (a non-empty string)")
    elif kind == "group" and not _is_id(message.get("groupId")):
        reasons.append("group needs groupId (a non-empty string)")
    return reasons
