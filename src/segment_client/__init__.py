"""segment_client: a server-side Python client for the Segment HTTP Tracking API.

```python
from segment_client import Client

client = Client("WRITE_KEY")
client.track("user-1", "Order Completed", {"revenue": 59.99})
client.close_and_flush(timeout=5)
```
"""

from __future__ import annotations

import logging as _logging

from ._client import Client
from ._events import (
    CallAfterCloseEvent,
    DeliveryFailureEvent,
    DrainedEvent,
    DropEvent,
    HttpRequestEvent,
    HttpResponseEvent,
)
from ._exceptions import (
    APIError,
    ClientClosedError,
    ConfigurationError,
    DeliveryError,
    MessageError,
    MessageTooLargeError,
    MissingDependencyError,
    QueueFullError,
    SegmentError,
    TransportError,
)
from ._middleware import Middleware, redact_pii, sample, static_context
from ._plan import PlanError, TrackingPlan, TrackingPlanViolation, load_plan
from ._queue import MemoryQueue, MessageQueue, QueueLoss, QueuePolicy
from ._retry import RetryPolicy
from ._scope import (
    MessageDefaults,
    context_defaults,
    reset_context_defaults,
    set_context_defaults,
)
from ._signals import install_sigterm_handler
from ._stats import ClientStats
from ._transports import ConnectionDropped, Transport
from ._transports._auth import OAuthError, OAuthSettings
from ._transports._http import HTTPTransport
from ._version import __version__

__all__ = [
    "APIError",
    "CallAfterCloseEvent",
    "Client",
    "ClientClosedError",
    "ClientStats",
    "ConfigurationError",
    "ConnectionDropped",
    "DeliveryError",
    "DeliveryFailureEvent",
    "DrainedEvent",
    "DropEvent",
    "HTTPTransport",
    "HttpRequestEvent",
    "HttpResponseEvent",
    "MemoryQueue",
    "MessageDefaults",
    "MessageError",
    "MessageQueue",
    "MessageTooLargeError",
    "Middleware",
    "MissingDependencyError",
    "OAuthError",
    "OAuthSettings",
    "PlanError",
    "QueueFullError",
    "QueueLoss",
    "QueuePolicy",
    "RetryPolicy",
    "SegmentError",
    "TrackingPlan",
    "TrackingPlanViolation",
    "Transport",
    "TransportError",
    "__version__",
    "context_defaults",
    "install_sigterm_handler",
    "load_plan",
    "redact_pii",
    "reset_context_defaults",
    "sample",
    "set_context_defaults",
    "static_context",
]

# Public objects report the public module, not the private one they live in.
# Only classes defined in this package: on Python 3.10 some typing objects (generic
# aliases) are instances of `type`-like classes whose `__module__` is read-only.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith(__name__ + "."):
        _obj.__module__ = __name__
del _name, _obj

# Libraries log; applications decide where logs go.
_logging.getLogger("segment_client").addHandler(_logging.NullHandler())
