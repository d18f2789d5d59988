"""Usage in the local collector: monthly tracked users, API calls, events per destination.

`UsageCounter` counts what the store holds (fed by a follower thread) and reports it with
a month projected from the observed rate; `MonthlyUsers` is Segment's MTU rule.
"""

from __future__ import annotations

from ._counter import SEGMENT, UsageCounter
from ._mtu import Linker, MonthlyUsers, MtuCount, month_of

__all__ = ["SEGMENT", "Linker", "MonthlyUsers", "MtuCount", "UsageCounter", "month_of"]
