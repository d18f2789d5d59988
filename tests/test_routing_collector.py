"""Routing, usage and the warehouse attached to a real collector, through a real Client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segment_client import Client
from segment_client._cli import main as cli_main
from segment_client.collector import Collector, Destinations, DestinationsError

DESTINATIONS = """
[[destinations]]
name = "Amplitude"

  [[destinations.filters]]
  name = "no page views"
  action = "drop"
  match = { type = "page" }

[[destinations]]
name = "Mixpanel"

  [[destinations.filters]]
  name = "no emails"
  action = "drop_properties"
  fields = ["properties.email"]

[[destinations]]
name = "Braze"
enabled = false
"""


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def attached(tmp_path: Path) -> Iterator[tuple[Collector, Destinations]]:
    path = tmp_path / "destinations.toml"
    path.write_text(DESTINATIONS)
    with Collector() as collector, Destinations(
        collector, path, warehouse=f"sqlite:{tmp_path / 'warehouse.sqlite3'}"
    ) as destinations:
        yield collector, destinations


def send_calls(collector: Collector) -> None:
    with Client("key", host=collector.url, max_retries=0) as client:
        client.track("u1", "Order Completed", {"email": "ada@acme.example", "revenue": 5})
        client.page("u1", name="Home")
        client.track("u2", "Signed Up", integrations={"All": False, "Mixpanel": True})
        client.track("u3", "Internal", integrations={"Segment.io": False})
        client.identify("u1", {"plan": "pro"}, integrations={"amplitude": False})
        assert client.flush(10)


def test_every_message_routed_through_a_real_client(
    attached: tuple[Collector, Destinations],
) -> None:
    collector, destinations = attached
    send_calls(collector)
    assert destinations.wait()
    rows = collector.events(oldest_first=True)
    ids = ",".join(str(row["id"]) for row in rows)
    status, body = get(f"{collector.url}/v1/routing?ids={ids}")
    assert status == 200
    assert body["destinations"] == ["Amplitude", "Mixpanel", "Braze"]
    by_name = {row["message"].get("event") or row["message"]["type"]:
               body["routing"][str(row["id"])] for row in rows}
    assert {k: v["delivered"] for k, v in by_name.items()} == {
        "Order Completed": ["Amplitude", "Mixpanel"],
        "page": ["Mixpanel"],
        "Signed Up": ["Mixpanel"],
        "Internal": [],
        "identify": ["Amplitude", "Mixpanel"],
    }
    order = {d["destination"]: d for d in by_name["Order Completed"]["decisions"]}
    assert order["Mixpanel"]["removed"] == ["properties.email"]
    assert order["Braze"]["code"] == "disabled"
    assert by_name["Internal"]["segment"] is False
    assert by_name["identify"]["unknown_integrations"] == ["amplitude"]
    page = {d["destination"]: d for d in by_name["page"]["decisions"]}
    assert page["Amplitude"]["reason"] == "dropped by filter 'no page views'"
    one = rows[0]["id"]
    status, single = get(f"{collector.url}/v1/routing/{one}")
    assert (status, single["delivered"], single["id"]) == (200, ["Amplitude", "Mixpanel"], one)
    assert get(f"{collector.url}/v1/routing/999999")[0] == 404
    assert get(f"{collector.url}/v1/routing?ids=a,b")[0] == 400
    assert get(f"{collector.url}/v1/routing/x")[0] == 400


def test_counts_usage_and_warehouse_over_the_read_api(
    attached: tuple[Collector, Destinations],
) -> None:
    collector, destinations = attached
    send_calls(collector)
    assert destinations.wait()
    status, body = get(f"{collector.url}/v1/destinations")
    assert status == 200
    assert [(d["name"], d["enabled"], d["events"]) for d in body["destinations"]] == [
        ("Amplitude", True, 2), ("Mixpanel", True, 4), ("Braze", False, 0)]
    assert body["destinations"][0]["filters"] == ["no page views: drop when type page"]
    status, usage = get(f"{collector.url}/v1/usage?multiplier=10")
    assert status == 200
    assert (usage["api_calls"], usage["not_sent_to_segment"], usage["mtu"]) == (4, 1, 2)
    assert usage["destinations"] == {"Amplitude": 2, "Mixpanel": 4, "Braze": 0}
    assert usage["projection"]["mtu"] == 20
    assert "lag" not in usage  # counted when read: never behind
    assert sum(usage["per_minute"]["series"]["Segment"]) == 4
    assert get(f"{collector.url}/v1/usage?multiplier=0")[0] == 400
    assert get(f"{collector.url}/v1/usage?multiplier=nan")[0] == 400
    status, warehouse = get(f"{collector.url}/v1/warehouse")
    assert status == 200
    assert (warehouse["enabled"], warehouse["lag_rows"], warehouse["error"]) == (True, 0, None)
    assert warehouse["url"].endswith("warehouse.sqlite3")
    assert destinations.loader is not None
    assert destinations.loader.query("SELECT COUNT(*) FROM tracks") == [(2,)]
    assert destinations.loader.query("SELECT plan FROM users") == [("pro",)]
    status, views = get(f"{collector.url}/v1/views")
    assert {"path": "/static/usage.html", "title": "Usage"} in views
    collector.clear()
    assert destinations.wait()
    assert destinations.report()["api_calls"] == 0


def test_without_a_warehouse_or_file(tmp_path: Path) -> None:
    with Collector() as collector, Destinations(collector) as destinations:
        assert get(f"{collector.url}/v1/warehouse") == (200, {"enabled": False})
        assert get(f"{collector.url}/v1/destinations")[1]["destinations"] == []
        with Client("key", host=collector.url) as client:
            client.track(anonymous_id="a1", event="Viewed")
            assert client.flush(10)
        assert destinations.wait()
        assert destinations.report()["mtu"] == 1
    bad = tmp_path / "bad.json"
    bad.write_text('{"destinations": [{"name": ""}]}')
    with Collector() as collector, pytest.raises(DestinationsError, match="name"):
        Destinations(collector, bad)


def test_collector_command_options_fail_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"destinations": [{"name": "A", "filters": [{"action": "x"}]}]}')
    assert cli_main(["collector", "--port", "0", "--db", ":memory:",
                     "--destinations", str(bad)]) == 2
    assert "--destinations: " in capsys.readouterr().err
    assert cli_main(["collector", "--port", "0", "--db", ":memory:",
                     "--warehouse", "mysql://x"]) == 2
    assert "--warehouse: ValueError: warehouse URL 'mysql://x'" in capsys.readouterr().err


class _Graph:
    """The identity graph's read side as `graph_linker` uses it."""

    def __init__(self) -> None:
        self.caught_up = 0

    def catch_up(self) -> None:
        self.caught_up += 1

    @property
    def graph(self) -> _Graph:
        return self

    def profiles(self) -> list[dict[str, Any]]:
        return [
            {"identifiers": [{"type": "user_id", "value": "u1"},
                             {"type": "anonymous_id", "value": "browser-2"}]},
            {"identifiers": [{"type": "anonymous_id", "value": "browser-3"}]},
        ]


def test_the_identity_graph_links_more_anonymous_ids_when_the_collector_has_one() -> None:
    with Collector() as collector:
        graph = _Graph()
        collector.profiles = graph  # type: ignore[attr-defined]
        with Destinations(collector) as destinations:
            with Client("key", host=collector.url) as client:
                client.track("u1", "Signed Up", anonymous_id="browser-1")
                client.page(anonymous_id="browser-2", name="Home")  # linked by the graph
                client.page(anonymous_id="browser-3", name="Home")  # a profile, no user
                assert client.flush(10)
            assert destinations.wait()
            report = destinations.report()
            assert (report["mtu"], report["identity_graph"], graph.caught_up) == (2, True, 1)
            assert report["months"][0]["anonymous_ids"] == 1
        with Destinations(collector, linked=lambda anonymous_id: False) as own:
            assert own.wait()
            assert own.report()["mtu"] == 3  # an explicit hook wins over the graph


def test_the_real_identity_graph_links_an_aliased_anonymous_id() -> None:
    with Collector() as collector, Destinations(collector) as destinations:
        assert hasattr(collector, "profiles")  # the collector's own identity graph
        with Client("key", host=collector.url) as client:
            client.page(anonymous_id="browser-1", name="Home")
            client.alias("browser-1", "u1")  # previousId: no message carries both ids
            assert client.flush(10)
        report = destinations.report()
        assert report["identity_graph"] is True
        assert (report["mtu"], report["months"][0]["anonymous_ids"]) == (1, 0)
    with Collector() as collector, Destinations(
        collector, linked=lambda anonymous_id: False
    ) as without:
        with Client("key", host=collector.url) as client:
            client.page(anonymous_id="browser-1", name="Home")
            client.alias("browser-1", "u1")
            assert client.flush(10)
        assert without.report()["mtu"] == 2  # pairs alone: browser-1 looks unlinked
