"""The volume that drives a Segment bill: API calls, MTUs, events per destination.

`UsageCounter` counts each stored message once (fed by `CountOnRead`, or by
`collector report` from a store file), routes it with the collector's `Router`, and
keeps per-month and per-minute totals, so a report never rescans what it counted.
`report()` adds a month projected from the observed rate.
Not thread-safe on its own: `CountOnRead` serialises `load` and reads.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any

from segment_client.collector._records import Record
from segment_client.collector._routing import Router
from segment_client.collector._yield import share_gil

from ._mtu import Linker, MonthlyUsers, month_of

__all__ = ["MINUTES_KEPT", "SEGMENT", "UsageCounter"]

# The per-minute series keeps this many minutes (a day), the oldest dropped first.
MINUTES_KEPT = 24 * 60
# The series of every message Segment receives, beside one series per destination.
SEGMENT = "Segment"
_MONTH_SECONDS = 30 * 24 * 3600


class UsageCounter:
    """Counts stored messages for the usage report. Used under one lock."""

    def __init__(self, router: Router | None = None, linked: Linker | None = None) -> None:
        self.router = router or Router()
        self.linked = linked
        self.clear()

    def clear(self) -> None:
        """Forget every count (the store was cleared)."""
        self._users = MonthlyUsers()
        self._api_calls: Counter[str] = Counter()  # by month
        self._delivered: dict[str, Counter[str]] = {}  # month -> destination -> events
        self._minutes: OrderedDict[str, Counter[str]] = OrderedDict()
        self.not_sent = 0  # integrations["Segment.io"] false: never reaches Segment
        self.first: str | None = None
        self.last: str | None = None

    def load(self, records: Sequence[Record]) -> int:
        """Count a chunk of stored messages, oldest first."""
        for index, record in enumerate(records):
            if not index % 64:
                share_gil()  # a read counting a backlog lets request threads run first
            self._count(record)
        return len(records)

    def _count(self, record: Record) -> None:
        message = record.message
        routing = self.router.route(message)
        if not routing.segment:
            self.not_sent += 1
            return
        received = record.received_at
        month = month_of(received)
        # Segment bills every call it receives, repeats included; it dedupes before
        # destinations, so a repeat reaches none.
        self._api_calls[month] += 1
        if self.first is None or received < self.first:
            self.first = received
        if self.last is None or received > self.last:
            self.last = received
        minute = received[:16]
        bucket = self._minutes.get(minute)
        if bucket is None:
            bucket = self._minutes[minute] = Counter()
            if len(self._minutes) > MINUTES_KEPT:
                self._minutes.popitem(last=False)
        bucket[SEGMENT] += 1
        self._users.add(month, message.get("userId"), message.get("anonymousId"))
        if record.duplicate:
            return
        delivered = self._delivered.setdefault(month, Counter())
        for name in routing.delivered:
            delivered[name] += 1
            bucket[name] += 1

    def close(self) -> None:
        """Nothing to release (the counts live in memory)."""

    def delivered(self) -> dict[str, int]:
        """Events delivered to each destination, all months together."""
        total: Counter[str] = Counter()
        for month in self._delivered.values():
            total.update(month)
        return {name: total[name] for name in self.router.names}

    def months(self, linked: Linker | None = None) -> list[dict[str, Any]]:
        """Per calendar month: MTU (and its parts), API calls, events per destination.

        `linked` overrides the counter's own identity-graph hook for this call.
        """
        linked = linked or self.linked
        result = []
        for month in sorted(set(self._api_calls) | set(self._users.months())):
            count = self._users.count(month, linked)
            delivered = self._delivered.get(month, Counter())
            result.append({
                **count.to_dict(),
                "api_calls": self._api_calls[month],
                "destinations": {name: delivered[name] for name in self.router.names},
            })
        return result

    def per_minute(self, minutes: int = 60) -> dict[str, Any]:
        """The last `minutes` minutes that saw messages, up to the newest: labels and one
        series per destination (plus `Segment`, every message received)."""
        if not self._minutes:
            return {"minutes": [], "series": {SEGMENT: [], **{n: [] for n in self.router.names}}}
        labels = _minute_range(next(reversed(self._minutes)), minutes)
        names = [SEGMENT, *self.router.names]
        return {
            "minutes": labels,
            "series": {
                name: [self._minutes.get(label, Counter())[name] for label in labels]
                for name in names
            },
        }

    def report(
        self, multiplier: float = 1.0, minutes: int = 60, linked: Linker | None = None
    ) -> dict[str, Any]:
        """Everything the Usage view and `collector report` show, with a projected month.

        The rate is observed over whole minutes, from the first message's minute to the
        last one's; the projection is that rate over 30 days times `multiplier`. The
        projected MTU is the newest month's MTU times `multiplier` (tracked users do not
        grow with time the way calls do).
        """
        months = self.months(linked)
        calls = sum(self._api_calls.values())
        span = _minutes_between(self.first, self.last) * 60 if self.first and self.last else 0
        rate = calls / span if span else 0.0
        current = months[-1] if months else {"month": None, "mtu": 0, "destinations": {}}
        total_delivered: Counter[str] = Counter()
        for month in months:
            total_delivered.update(month["destinations"])
        share = {name: (total_delivered[name] / calls if calls else 0.0)
                 for name in self.router.names}
        projected_calls = round(rate * _MONTH_SECONDS * multiplier)
        return {
            "month": current["month"],
            "mtu": current["mtu"],
            "api_calls": calls,
            "not_sent_to_segment": self.not_sent,
            "destinations": {name: total_delivered[name] for name in self.router.names},
            "months": months,
            "observed": {
                "first_received_at": self.first,
                "last_received_at": self.last,
                "seconds": span,
                "api_calls_per_second": round(rate, 3),
            },
            "projection": {
                "multiplier": multiplier,
                "days": 30,
                "api_calls": projected_calls,
                "mtu": round(current["mtu"] * multiplier),
                "destinations": {name: round(projected_calls * share[name])
                                 for name in self.router.names},
            },
            "identity_graph": (linked or self.linked) is not None,
            "per_minute": self.per_minute(minutes),
        }


def _parse_minute(label: str) -> tuple[int, int, int, int, int]:
    return (int(label[0:4]), int(label[5:7]), int(label[8:10]), int(label[11:13]),
            int(label[14:16]))


def _minutes_between(first: str, last: str) -> int:
    """Whole minutes from `first`'s minute to `last`'s, both counted (at least 1)."""
    a = dt.datetime(*_parse_minute(first[:16]), tzinfo=dt.timezone.utc)
    b = dt.datetime(*_parse_minute(last[:16]), tzinfo=dt.timezone.utc)
    return max(int((b - a).total_seconds() // 60) + 1, 1)


def _minute_range(newest: str, count: int) -> list[str]:
    end = dt.datetime(*_parse_minute(newest), tzinfo=dt.timezone.utc)
    return [(end - dt.timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M")
            for i in reversed(range(count))]
