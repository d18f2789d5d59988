"""OpenTelemetry metrics for a client: the counters of `stats()` and request latency.

```python
from segment_client import Client
from segment_client.otel import instrument

client = Client("WRITE_KEY")
instrumentation = instrument(client)   # the global MeterProvider, or meter_provider=...
```

Needs the `otel` extra (`pip install segment-client[otel]`, which installs
`opentelemetry-api` only: the application chooses and configures the SDK and its
exporters). Instruments, all on the meter named "segment_client":

| instrument | kind | unit | from |
| --- | --- | --- | --- |
| `segment_client.messages.queued` | counter | `{message}` | `stats().queued` |
| `segment_client.messages.delivered` | counter | `{message}` | `stats().delivered` |
| `segment_client.messages.failed` | counter | `{message}` | `stats().failed` |
| `segment_client.messages.retried` | counter | `{message}` | `stats().retried` |
| `segment_client.messages.dropped` | counter [1] | `{message}` | `stats().dropped` |
| `segment_client.batches.delivered` | counter | `{batch}` | `stats().batches_sent` |
| `segment_client.queue.size` | up-down counter | `{message}` | `stats().queue_depth` |
| `segment_client.messages.in_flight` | up-down counter | `{message}` | `stats().in_flight` |
| `segment_client.request.duration` | histogram | `s` | `http_response` events |

[1] with the attribute `error.type` = the drop reason.

The counters are observed from `stats()` at each collection, so they show exactly the
figures `stats()` returns (summed over the clients instrumented with the same
attributes on one provider). The histogram records one value per HTTP answer, with the
attributes `http.response.status_code`, `server.address` and `server.port`.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._exceptions import MissingDependencyError
from ._version import __version__

try:
    from opentelemetry import metrics
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingDependencyError(
        "segment_client.otel needs OpenTelemetry: pip install 'segment-client[otel]'"
    ) from exc

if TYPE_CHECKING:
    from ._client import Client
    from ._events import HttpResponseEvent
    from ._stats import ClientStats

__all__ = ["METER_NAME", "Instrumentation", "instrument"]

#: The instrumentation scope of every instrument.
METER_NAME = "segment_client"

# Bucket boundaries (seconds) OpenTelemetry's HTTP semantic conventions advise for
# request durations.
_DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)

# (instrument name, description, stats field) of the monotonic counters.
_COUNTERS = (
    ("segment_client.messages.queued", "Messages accepted by a call and queued", "queued"),
    ("segment_client.messages.delivered", "Messages delivered (2xx)", "delivered"),
    ("segment_client.messages.failed", "Messages reported failed after the retries",
     "failed"),
    ("segment_client.messages.retried", "Messages sent again in a retried request",
     "retried"),
)
_UP_DOWN = (
    ("segment_client.queue.size", "Messages waiting in the queue", "queue_depth"),
    ("segment_client.messages.in_flight", "Messages in the request being sent",
     "in_flight"),
)


Attributes = dict[str, "str | int | float | bool"]


class _Instruments:
    """The instruments on one meter provider, shared by every client instrumented on it.

    OpenTelemetry keeps the first instrument of a name and ignores the callbacks of a
    second one, so a provider gets one set; each collection asks every registered
    client, and sums the figures of clients with the same attributes.
    """

    def __init__(self, provider: MeterProvider) -> None:
        self._lock = threading.Lock()
        self._members: list[Instrumentation] = []
        meter = provider.get_meter(METER_NAME, __version__)
        for name, description, field in _COUNTERS:
            meter.create_observable_counter(
                name, callbacks=[self._observer(field)], unit="{message}",
                description=description,
            )
        meter.create_observable_counter(
            "segment_client.messages.dropped", callbacks=[self._observe_dropped],
            unit="{message}", description="Messages dropped without being sent, by reason",
        )
        meter.create_observable_counter(
            "segment_client.batches.delivered", callbacks=[self._observer("batches_sent")],
            unit="{batch}", description="Requests that delivered a batch",
        )
        for name, description, field in _UP_DOWN:
            meter.create_observable_up_down_counter(
                name, callbacks=[self._observer(field)], unit="{message}",
                description=description,
            )
        self.duration = _histogram(meter)

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def add(self, member: Instrumentation) -> None:
        with self._lock:
            self._members.append(member)

    def remove(self, member: Instrumentation) -> None:
        with self._lock:
            self._members = [m for m in self._members if m is not member]

    def _snapshots(self) -> list[tuple[Attributes, ClientStats]]:
        with self._lock:
            members = list(self._members)
        out = []
        for member in members:
            client = member.client()
            if client is None:
                self.remove(member)
            else:
                out.append((member.attributes, client.stats()))
        return out

    def _observer(self, field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            totals: dict[tuple[tuple[str, Any], ...], int] = {}
            for attributes, stats in self._snapshots():
                key = tuple(sorted(attributes.items()))
                totals[key] = totals.get(key, 0) + getattr(stats, field)
            return [Observation(value, dict(key)) for key, value in totals.items()]

        return observe

    def _observe_dropped(self, options: CallbackOptions) -> Iterable[Observation]:
        totals: dict[tuple[tuple[str, Any], ...], int] = {}
        for attributes, stats in self._snapshots():
            for reason, count in stats.dropped.items():
                key = tuple(sorted({**attributes, "error.type": reason}.items()))
                totals[key] = totals.get(key, 0) + count
        return [Observation(value, dict(key)) for key, value in sorted(totals.items())]


_registry_lock = threading.Lock()
# One `_Instruments` per provider, for as long as the provider lives.
_registry: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()


def _after_fork_in_child() -> None:
    # Locks held by a thread of the parent at fork would never be released here.
    global _registry_lock
    _registry_lock = threading.Lock()
    for instruments in list(_registry.values()):
        instruments.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _instruments_for(provider: MeterProvider) -> _Instruments:
    with _registry_lock:
        found = _registry.get(provider)
        if found is None:
            found = _registry[provider] = _Instruments(provider)
        return found


class Instrumentation:
    """One client's export to one meter provider, made by `instrument()`.

    Holds the client weakly: a client that is garbage collected stops being observed.
    Thread-safe. `uninstrument()` stops the export of this client.
    """

    def __init__(
        self, client: Client, meter_provider: MeterProvider | None,
        attributes: Mapping[str, str | int | float | bool] | None,
    ) -> None:
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        self.client = weakref.ref(client)
        self.attributes: Attributes = dict(attributes or {})
        self._lock = threading.Lock()
        self._active = True
        server = urlsplit(getattr(client, "host", "") or "")
        self._response_attributes: Attributes = dict(self.attributes)
        if server.hostname:
            self._response_attributes["server.address"] = server.hostname
            self._response_attributes["server.port"] = server.port or (
                443 if server.scheme == "https" else 80
            )
        self._instruments = _instruments_for(provider)
        self._instruments.add(self)
        self._unsubscribe = client.on("http_response", self._record_response)

    def uninstrument(self) -> None:
        """Stop exporting this client's figures; idempotent."""
        with self._lock:
            if not self._active:
                return
            self._active = False
        self._unsubscribe()
        self._instruments.remove(self)

    def _record_response(self, event: HttpResponseEvent) -> None:
        if self._active:
            self._instruments.duration.record(
                event.elapsed,
                {**self._response_attributes, "http.response.status_code": event.status},
            )


def instrument(
    client: Client,
    *,
    meter_provider: MeterProvider | None = None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Instrumentation:
    """Export `client`'s counters and request latency as OpenTelemetry metrics.

    `meter_provider`: where the instruments are created (default: the global provider
    set with `opentelemetry.metrics.set_meter_provider`). `attributes` are added to
    every measurement (e.g. `{"service.component": "billing"}` to tell clients apart).
    Returns the `Instrumentation`; `uninstrument()` on it stops the export. Clients
    instrumented on one provider with the same attributes are summed. Never blocks;
    the counters cost nothing on the call path (they are read from `stats()` when the
    reader collects).
    """
    return Instrumentation(client, meter_provider, attributes)


def _histogram(meter: metrics.Meter) -> metrics.Histogram:
    options: dict[str, Any] = {
        "unit": "s", "description": "Duration of one HTTP request to the collector",
    }
    try:
        return meter.create_histogram(
            "segment_client.request.duration",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS), **options,
        )
    except TypeError:  # opentelemetry-api before 1.23: no bucket advice
        return meter.create_histogram("segment_client.request.duration", **options)
