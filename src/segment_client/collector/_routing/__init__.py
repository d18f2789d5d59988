"""Routing in the local collector: the destinations file and Segment's routing rules.

`load_destinations(path)` reads and checks a destinations file; `Router(destinations)`
answers, for every message, which destinations receive it and why (see `_decide`).
"""

from __future__ import annotations

from ._config import (
    Condition,
    Destination,
    DestinationsError,
    Filter,
    Match,
    load_destinations,
    parse_destinations,
)
from ._decide import Decision, Router, Routing, matches

__all__ = [
    "Condition",
    "Decision",
    "Destination",
    "DestinationsError",
    "Filter",
    "Match",
    "Router",
    "Routing",
    "load_destinations",
    "matches",
    "parse_destinations",
]
