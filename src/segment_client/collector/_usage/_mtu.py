"""Monthly tracked users, as Segment counts them for the bill. Pure counting.

Per calendar month (UTC, by the time Segment receives the message): the distinct
userIds seen that month, plus the distinct anonymousIds seen that month that no message
of that month links to a userId (Segment counts links within the billing period: an
anonymousId linked last month but seen only anonymously this month counts again). A
message carrying both ids links them. An identity graph, when the collector has one, can
link more (alias chains, merges): pass its `linked(anonymous_id) -> bool`; it is the
graph's current state, applied to every month. Not thread-safe: one follower thread owns
a counter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Linker", "MonthlyUsers", "MtuCount", "month_of"]

# anonymousId -> whether an identity graph links it to a userId.
Linker = Callable[[str], bool]


def month_of(received_at: str) -> str:
    """The calendar month (`YYYY-MM`) of an ISO timestamp in UTC."""
    return received_at[:7]


@dataclass(frozen=True)
class MtuCount:
    """One month's tracked users: `user_ids` + `anonymous_ids` (the unlinked ones)."""

    month: str
    user_ids: int
    anonymous_ids: int

    @property
    def total(self) -> int:
        return self.user_ids + self.anonymous_ids

    def to_dict(self) -> dict[str, Any]:
        return {"month": self.month, "mtu": self.total, "user_ids": self.user_ids,
                "anonymous_ids": self.anonymous_ids}


@dataclass
class _Month:
    users: set[str] = field(default_factory=set)
    anonymous: set[str] = field(default_factory=set)
    linked: set[str] = field(default_factory=set)  # anonymousIds paired with a userId


class MonthlyUsers:
    """Ids seen per month and the anonymousIds each month links to a userId."""

    def __init__(self) -> None:
        self._months: dict[str, _Month] = {}

    def add(self, month: str, user_id: Any, anonymous_id: Any) -> None:
        """Count one message's ids (non-string ids count by their text; empty: none)."""
        record = self._months.get(month)
        if record is None:
            record = self._months[month] = _Month()
        user = _id(user_id)
        anonymous = _id(anonymous_id)
        if user is not None:
            record.users.add(user)
        if anonymous is not None:
            record.anonymous.add(anonymous)
            if user is not None:
                record.linked.add(anonymous)

    def months(self) -> list[str]:
        return sorted(self._months)

    def count(self, month: str, linked: Linker | None = None) -> MtuCount:
        """The month's MTU; `linked` (the identity graph) may link more anonymousIds."""
        record = self._months.get(month, _Month())
        unlinked = 0
        for anonymous in record.anonymous - record.linked:
            if linked is not None and _safe(linked, anonymous):
                continue
            unlinked += 1
        return MtuCount(month, len(record.users), unlinked)


def _id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _safe(linked: Linker, anonymous: str) -> bool:
    try:
        return bool(linked(anonymous))
    except Exception:  # noqa: BLE001 - a broken graph must not break the count
        return False
