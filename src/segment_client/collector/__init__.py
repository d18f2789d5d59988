"""A local Segment-compatible collector for development and tests.

```python
from segment_client import Client
from segment_client.collector import Collector, Fault

with Collector(faults=[Fault(status=500, rate=0.2)], seed=1) as collector:
    with Client("dev", host=collector.url) as client:
        client.track("user-1", "Signed Up")
    print(collector.stats())
```

Run it standalone with `segment-client collector`. Nothing in the core library imports
this package.
"""

from __future__ import annotations

from ._destinations import Destinations
from ._faults import Fault, FaultPlan, parse_fault
from ._routing import DestinationsError
from ._server import MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES, Collector, Validator
from ._validate import validate_message

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_REQUEST_BYTES",
    "Collector",
    "Destinations",
    "DestinationsError",
    "Fault",
    "FaultPlan",
    "Validator",
    "parse_fault",
    "validate_message",
]
