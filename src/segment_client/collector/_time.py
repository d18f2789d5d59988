"""ISO 8601 text to a datetime, as the collector's views read message timestamps."""

from __future__ import annotations

import datetime as dt
from typing import Any


def parse_iso(value: Any) -> dt.datetime | None:
    """`value` as an aware datetime (no offset: UTC), or None when it is not ISO text.

    Accepts the trailing `Z` that `fromisoformat` refuses before Python 3.11. Pure.
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed
