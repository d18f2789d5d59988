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


_TYPES = frozenset(MESSAGE_TYPES)
_time_match = _TIME_RE.match


def _plainly_valid(message: dict[str, Any], expected_type: str | None) -> bool:
    """True for a message that `_reasons` would accept, checked without building reasons.

    The collector validates every message it stores; this straight-line check is about
    three times faster than the general walk. Anything unusual (a subclass, a number id,
    an offset the regex does not take) returns False and gets the full check.
    """
    get = message.get
    kind = get("type", expected_type)
    if type(kind) is not str or kind not in _TYPES:
        return False
    if expected_type is not None and kind != expected_type:
        return False
    # Straight-line on purpose: loops over field names cost as much as the checks.
    value = get("context")
    if value is not None and type(value) is not dict:
        return False
    value = get("properties")
    if value is not None and type(value) is not dict:
        return False
    value = get("integrations")
    if value is not None and type(value) is not dict:
        return False
    value = get("traits")
    if value is not None and type(value) is not dict:
        return False
    value = get("messageId")
    if value is not None and type(value) is not str:
        return False
    value = get("name")
    if value is not None and type(value) is not str:
        return False
    value = get("category")
    if value is not None and type(value) is not str:
        return False
    value = get("timestamp")
    if value is not None and (type(value) is not str or _time_match(value) is None):
        return False
    value = get("sentAt")
    if value is not None and (type(value) is not str or _time_match(value) is None):
        return False
    value = get("originalTimestamp")
    if value is not None and (type(value) is not str or _time_match(value) is None):
        return False
    user_id = get("userId")
    if user_id is not None and (type(user_id) is not str or not user_id):
        return False
    anonymous_id = get("anonymousId")
    if anonymous_id is not None and (type(anonymous_id) is not str or not anonymous_id):
        return False
    event = get("event")
    if event is not None and type(event) is not str:
        return False
    group_id = get("groupId")
    if group_id is not None and (type(group_id) is not str or not group_id):
        return False
    previous_id = get("previousId")
    if previous_id is not None and (type(previous_id) is not str or not previous_id):
        return False
    if kind == "alias":
        return user_id is not None and previous_id is not None
    if kind == "track" and not event:
        return False
    if kind == "group" and group_id is None:
        return False
    return user_id is not None or anonymous_id is not None


def validate_message(message: Any, expected_type: str | None = None) -> list[str]:
    """Reasons `message` would not be accepted; `expected_type` for single-message routes."""
    if type(message) is dict and _plainly_valid(message, expected_type):
        return []
    return _reasons(message, expected_type)


def _reasons(message: Any, expected_type: str | None) -> list[str]:
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
