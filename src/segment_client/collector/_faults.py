"""Fault injection: which ingest requests fail, and how.

A `FaultPlan` holds `Fault` rules and a seeded random generator. For each ingest request
the collector asks `pick()` once: count rules are used first, in order, until spent;
then one random draw chooses among the rate rules (their rates add up to at most 1), so
"20% 500, 10% 429" means exactly one of those outcomes, or none, per request.
Thread-safe.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Fault", "FaultPlan", "parse_fault"]


@dataclass
class Fault:
    """One fault rule.

    Attributes:
        status: answer this HTTP status instead of processing (500, 429, 413...).
        drop: close the connection without answering.
        delay: seconds to wait before handling the request (then it is handled normally,
            unless `status` or `drop` is also set).
        rate: the fraction of requests this rule applies to (0..1).
        count: the number of next requests this rule applies to (used before rate rules).
        retry_after: the `Retry-After` header value, in seconds, sent with `status`.
        store: with `drop` or `status`: store the messages first, so the answer is lost
            after the work was done (the client's retry then makes duplicates).
    """

    status: int | None = None
    drop: bool = False
    delay: float = 0.0
    rate: float | None = None
    count: int | None = None
    retry_after: float | None = None
    store: bool = False
    injected: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.status is None and not self.drop and not self.delay:
            raise ValueError("a fault needs status=, drop or delay=")
        if self.status is not None and not 100 <= int(self.status) <= 599:
            raise ValueError(f"fault status must be an HTTP status (100..599), got {self.status}")
        if self.status is not None and self.drop:
            raise ValueError("a fault cannot both answer a status and drop the connection")
        if self.delay < 0:
            raise ValueError(f"fault delay must be >= 0 seconds, got {self.delay}")
        if self.rate is not None and self.count is not None:
            raise ValueError("a fault takes rate= or count=, not both")
        if self.rate is None and self.count is None:
            self.rate = 1.0
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate}")
        if self.count is not None and self.count < 0:
            raise ValueError(f"fault count must be >= 0, got {self.count}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"fault retry_after must be >= 0, got {self.retry_after}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """Build a rule from its JSON form (the control route, `--fault`)."""
        known = {"status", "drop", "delay", "rate", "count", "retry_after", "store"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown fault field(s) {sorted(unknown)}; expected some of {sorted(known)}"
            )
        try:
            return cls(
                status=None if data.get("status") is None else int(data["status"]),
                drop=bool(data.get("drop", False)),
                delay=float(data.get("delay", 0.0)),
                rate=None if data.get("rate") is None else float(data["rate"]),
                count=None if data.get("count") is None else int(data["count"]),
                retry_after=(
                    None if data.get("retry_after") is None else float(data["retry_after"])
                ),
                store=bool(data.get("store", False)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad fault {data!r}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with `injected` (how many requests it hit so far)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse_fault(spec: str) -> Fault:
    """Parse the CLI form: comma-separated `key=value`, bare `drop` / `store`.

    Examples: `status=500,rate=0.2`, `status=429,rate=0.1,retry_after=1`,
    `drop,rate=0.05`, `delay=2,count=3`.
    """
    data: dict[str, Any] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            if key not in ("drop", "store"):
                raise ValueError(f"fault {spec!r}: {key!r} needs a value ({key}=...)")
            data[key] = True
        elif key in ("drop", "store"):
            data[key] = value.strip().lower() in ("1", "true", "yes", "on")
        else:
            data[key] = value.strip()
    return Fault.from_dict(data)


class FaultPlan:
    """The active rules and the seeded generator that applies them. Thread-safe."""

    def __init__(self, faults: list[Fault] | None = None, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._rng = random.Random(seed)
        self.seed = seed
        self.set(faults or [], seed)

    def set(self, faults: list[Fault], seed: int | None = None) -> None:
        """Replace the rules (and reseed the generator)."""
        total = sum(f.rate or 0.0 for f in faults if f.count is None)
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:g}; they must add up to at most 1")
        with self._lock:
            self._faults = list(faults)
            self.seed = seed
            self._rng = random.Random(seed)

    def pick(self) -> Fault | None:
        """The fault for the next ingest request, or None."""
        with self._lock:
            if not self._faults:
                return None
            for fault in self._faults:
                if fault.count is not None and fault.count > 0:
                    fault.count -= 1
                    fault.injected += 1
                    return fault
            draw = self._rng.random()
            edge = 0.0
            for fault in self._faults:
                if fault.count is None and fault.rate:
                    edge += fault.rate
                    if draw < edge:
                        fault.injected += 1
                        return fault
            return None

    def to_dict(self) -> dict[str, Any]:
        """The rules (with their `injected` counters) and the seed."""
        with self._lock:
            return {"faults": [f.to_dict() for f in self._faults], "seed": self.seed}
