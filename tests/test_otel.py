"""The OpenTelemetry bridge, read back with the real SDK's in-memory reader."""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from segment_client import Client, MissingDependencyError
from segment_client.otel import METER_NAME, instrument
from segment_client.testing import RecordingTransport
from tests._support.localhttp import LocalServer, ScriptedAPI

Points = dict[str, dict[tuple[tuple[str, Any], ...], Any]]


@pytest.fixture(name="reader")
def _reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture(name="provider")
def _provider(reader: InMemoryMetricReader) -> Any:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


def _points(reader: InMemoryMetricReader) -> tuple[Points, dict[str, str]]:
    """{instrument name: {sorted attributes: value or histogram point}}, and the units."""
    points: Points = {}
    units: dict[str, str] = {}
    data = reader.get_metrics_data()
    if data is None:  # nothing at all was observed
        return points, units
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == METER_NAME
            for metric in scope.metrics:
                units[metric.name] = metric.unit or ""
                for point in metric.data.data_points:
                    key = tuple(sorted((point.attributes or {}).items()))
                    value = point if isinstance(point, HistogramDataPoint) else point.value
                    points.setdefault(metric.name, {})[key] = value
    return points, units


def test_the_bridge_shows_the_same_figures_as_stats_after_failures(
    reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    # sync_mode: one message per request, in order. 503 then OK (one retry), 401 (failed),
    # OK; then a call after close (dropped "closed").
    transport = RecordingTransport([503, None, 401, None])
    client = Client("wk", transport=transport, sync_mode=True, retry_base_delay=0)
    instrument(client, meter_provider=provider)
    for i in range(3):
        client.track("u", f"E{i}")
    assert client.close_and_flush(5)
    client.track("u", "late")
    stats = client.stats()
    assert (stats.queued, stats.delivered, stats.failed, stats.retried) == (3, 2, 1, 1)
    assert stats.dropped == {"closed": 1}

    points, units = _points(reader)
    assert points["segment_client.messages.queued"] == {(): stats.queued}
    assert points["segment_client.messages.delivered"] == {(): stats.delivered}
    assert points["segment_client.messages.failed"] == {(): stats.failed}
    assert points["segment_client.messages.retried"] == {(): stats.retried}
    assert points["segment_client.messages.dropped"] == {(("error.type", "closed"),): 1}
    assert points["segment_client.batches.delivered"] == {(): stats.batches_sent}
    assert points["segment_client.queue.size"] == {(): 0}
    assert points["segment_client.messages.in_flight"] == {(): 0}
    assert units["segment_client.messages.delivered"] == "{message}"
    assert units["segment_client.batches.delivered"] == "{batch}"
    assert units["segment_client.queue.size"] == "{message}"


def test_request_latency_is_a_histogram_by_status(
    reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    collector = ScriptedAPI([503])
    with LocalServer(collector) as server:
        client = Client(
            "wk", host=server.url, sync_mode=True, retry_base_delay=0, gzip=False
        )
        instrument(client, meter_provider=provider, attributes={"service.component": "t"})
        client.track("u", "E")
        assert client.close_and_flush(5)
    assert collector.attempts == 2
    points, units = _points(reader)
    durations = points["segment_client.request.duration"]
    assert units["segment_client.request.duration"] == "s"
    assert sorted(durations) == sorted(
        tuple(sorted({
            "http.response.status_code": status, "server.address": "127.0.0.1",
            "server.port": server.port, "service.component": "t",
        }.items()))
        for status in (200, 503)
    )
    for point in durations.values():
        assert point.count == 1 and point.sum > 0
        # The buckets OpenTelemetry's HTTP conventions advise, in seconds.
        assert list(point.explicit_bounds)[:3] == [0.005, 0.01, 0.025]
    # The counters carry the attributes too.
    assert points["segment_client.messages.delivered"] == {(("service.component", "t"),): 1}


def test_clients_on_one_provider_are_summed_or_told_apart_by_attributes(
    reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    clients = [Client("wk", transport=RecordingTransport(), sync_mode=True) for _ in range(3)]
    instrument(clients[0], meter_provider=provider)
    instrument(clients[1], meter_provider=provider)
    instrument(clients[2], meter_provider=provider, attributes={"service.component": "b"})
    for count, client in enumerate(clients, start=1):
        for _ in range(count):
            client.track("u", "E")
        client.close_and_flush(5)
    points, _ = _points(reader)
    assert points["segment_client.messages.delivered"] == {
        (): 3, (("service.component", "b"),): 3,
    }


def test_uninstrument_and_a_collected_client_stop_the_export(
    reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    first = Client("wk", transport=RecordingTransport(), sync_mode=True)
    second = Client("wk", transport=RecordingTransport(), sync_mode=True)
    handle = instrument(first, meter_provider=provider)
    instrument(second, meter_provider=provider)
    first.track("u", "E")
    handle.uninstrument()
    handle.uninstrument()  # idempotent
    first.track("u", "E")
    second.track("u", "E")
    second.track("u", "E")
    points, _ = _points(reader)
    # Only the second client is observed now.
    assert points["segment_client.messages.delivered"] == {(): 2}
    assert first._events.http_response == ()
    first.close_and_flush(5)
    second.close_and_flush(5)
    del second
    gc.collect()
    points, _ = _points(reader)
    assert "segment_client.messages.delivered" not in points


def test_without_opentelemetry_the_import_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.metrics", None)
    monkeypatch.delitem(sys.modules, "segment_client.otel")
    with pytest.raises(MissingDependencyError, match=r"segment-client\[otel\]"):
        importlib.import_module("segment_client.otel")
