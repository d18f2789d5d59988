"""Checks one Segment message the way the Tracking API's contract describes it.

Pure functions; no I/O. Each returns human-readable reasons (empty when the message is
fine) naming the field and what was expected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["MESSAGE_TYPES", "validate_message"]

MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")

_OBJECT_FIELDS = ("context", "integrations", "properties", "traits")
_STRING_FIELDS = ("messageId", "event", "groupId", "previousId", "name", "category")


def _is_id(value: Any) -> bool:
    # The API takes string or number ids; an empty string is no id.
    return (isinstance(value, str) and value != "") or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def _valid_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
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
    kind = message.get("type")
    if kind is None and expected_type is not None:
        kind = expected_type
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
    if kind == "group" and not _is_id(message.get("groupId")):
        reasons.append("group needs groupId (a non-empty string)")
    for name in _OBJECT_FIELDS:
        if name in message and message[name] is not None and not isinstance(message[name], dict):
            reasons.append(f"{name} must be an object, got {type(message[name]).__name__}")
    for name in _STRING_FIELDS:
        value = message.get(name)
        if value is not None and name in message and not isinstance(value, str):
            if name in ("groupId", "previousId") and _is_id(value):
                continue
            reasons.append(f"{name} must be a string, got {type(value).__name__}")
    for name in ("timestamp", "sentAt", "originalTimestamp"):
        if name in message and message[name] is not None and not _valid_time(message[name]):
            reasons.append(f"{name} must be an ISO 8601 date-time, got {message[name]!r}")
    return reasons
