"""The Usage view and the debugger's routing column, in Chromium, against the read API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from segment_client import Client
from segment_client._demo import demo_stream
from segment_client.collector import Collector, Destinations

from .conftest import WRITE_KEY

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
  name = "a tenth of feature use"
  action = "sample"
  percent = 10
  match = { event = "Feature Used" }

[[destinations]]
name = "Google Analytics"

  [[destinations.filters]]
  name = "orders only"
  action = "allow"
  match = { event = ["Order Completed", "Checkout Started"] }
"""


@pytest.fixture
def attached(collector: Collector, tmp_path: Path) -> Iterator[Destinations]:
    path = tmp_path / "destinations.toml"
    path.write_text(DESTINATIONS)
    with Destinations(collector, path,
                      warehouse=f"sqlite:{tmp_path / 'warehouse.sqlite3'}") as destinations:
        yield destinations


def send_demo(collector: Collector) -> int:
    with Client(WRITE_KEY, host=collector.url, max_retries=0, flush_at=50) as client:
        count = 0
        for method, kwargs in demo_stream(seed=7, users=8):
            getattr(client, method)(**kwargs)
            count += 1
        client.track("user-001", "Internal Check", integrations={"All": False})
        assert client.flush(10)
    return count + 1


def leave(page: Page) -> None:
    """Stop the page's polling before the collector stops (no refused fetch logged)."""
    page.goto("about:blank")


def read(collector: Collector, path: str) -> Any:
    response = requests.get(f"{collector.url}{path}", timeout=5)
    response.raise_for_status()
    return response.json()


def test_the_usage_view_shows_the_chart_and_the_counts_the_read_api_gives(
    page: Page, collector: Collector, attached: Destinations, docs_img: Path,
) -> None:
    sent = send_demo(collector)
    assert attached.wait()
    report = read(collector, "/v1/usage")
    assert report["api_calls"] == sent
    page.set_viewport_size({"width": 1280, "height": 1250})
    page.goto(f"{collector.url}/static/usage.html")
    expect(page.locator("#status")).to_have_text("live")
    expect(page.locator("#api-calls")).to_have_text(f"{report['api_calls']:,}")
    expect(page.locator("#mtu")).to_have_text(str(report["mtu"]))
    expect(page.locator("#month")).to_have_text(report["month"])
    expect(page.locator("#projected-calls")).to_have_text(
        f"{report['projection']['api_calls']:,}")
    for name, events in report["destinations"].items():
        row = page.locator(f"#destinations tr[data-destination='{name}']")
        expect(row.locator(".events")).to_have_text(f"{events:,}")
    # One line per series, each summing to what the read API gives per minute.
    series = report["per_minute"]["series"]
    assert list(series) == ["Segment", "Amplitude", "Mixpanel", "Google Analytics"]
    for name, values in series.items():
        path = page.locator(f"#chart path.series[data-series='{name}']")
        expect(path).to_have_attribute("data-total", str(sum(values)))
    assert sum(series["Segment"]) == sent
    assert sum(series["Amplitude"]) == report["destinations"]["Amplitude"]
    # The traffic multiplier projects the month.
    page.fill("#multiplier", "25")
    expect(page.locator("#projected-mtu")).to_have_text(str(report["mtu"] * 25))
    projected = read(collector, "/v1/usage?multiplier=25")["projection"]["api_calls"]
    expect(page.locator("#projected-calls")).to_have_text(f"{projected:,}")
    # The warehouse tables, as loaded.
    warehouse = read(collector, "/v1/warehouse?schema=1")
    for table in warehouse["schema"]:
        expect(page.locator(f"#schema tr[data-table='{table['table']}'] .rows")).to_have_text(
            f"{table['rows']:,}")
    expect(page.locator("#schema tr")).to_have_count(len(warehouse["schema"]))
    page.fill("#multiplier", "1")
    expect(page.locator("#projected-mtu")).to_have_text(str(report["mtu"]))
    page.screenshot(path=str(docs_img / "usage.png"))
    page.locator("#schema-section").screenshot(path=str(docs_img / "warehouse.png"))
    leave(page)


def test_the_live_view_shows_each_rows_routing_and_filters_by_destination(
    page: Page, collector: Collector, attached: Destinations, docs_img: Path,
) -> None:
    sent = send_demo(collector)
    assert attached.wait()
    stored = read(collector, "/v1/events?limit=1000")["events"]
    ids = ",".join(str(e["id"]) for e in stored)
    routing = read(collector, f"/v1/routing?ids={ids}")["routing"]
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(f"{collector.url}/")
    expect(page.locator("#status")).to_have_text("live")
    rows = page.locator("#stream .row[data-kind=event]")
    expect(rows).to_have_count(sent)
    expect(page.locator("#stream .row.routed")).to_have_count(sent)
    page.screenshot(path=str(docs_img / "routing.png"))
    for event in stored[:20]:
        cell = page.locator(f"#stream .row[data-id='{event['id']}'] .cell.routes")
        for decision in routing[str(event["id"])]["decisions"]:
            badge = cell.locator(f".route[data-destination='{decision['destination']}']")
            expect(badge).to_have_class("route on" if decision["delivered"] else "route off")
            expect(badge).to_have_attribute("title", decision["reason"])
    for name in ("Amplitude", "Mixpanel", "Google Analytics"):
        page.select_option("#f-destination", name)
        delivered = sum(1 for r in routing.values() if name in r["delivered"])
        expect(page.locator("#stream .row[data-kind=event]:not(.route-hidden)")).to_have_count(
            delivered)
    page.select_option("#f-destination", "\u0000none")
    nowhere = sum(1 for r in routing.values() if not r["delivered"])
    assert nowhere == 1  # the All: false check
    expect(page.locator("#stream .row[data-kind=event]:not(.route-hidden)")).to_have_count(1)
    page.click("#reset")
    expect(page.locator("#stream .row[data-kind=event]:not(.route-hidden)")).to_have_count(sent)
    leave(page)


def test_without_destinations_the_live_view_is_unchanged(page: Page, collector: Collector) -> None:
    with Client(WRITE_KEY, host=collector.url, max_retries=0) as client:
        client.track("u1", "Signed Up")
        assert client.flush(10)
    page.goto(f"{collector.url}/")
    expect(page.locator("#stream .row[data-kind=event]")).to_have_count(1)
    expect(page.locator("#f-destination")).to_have_count(0)
    expect(page.locator("#stream .cell.routes")).to_have_count(0)
    leave(page)


@pytest.mark.parametrize("asset", ["usage.js", "routing.js", "usage.html", "usage.css",
                                   "routing.css"])
def test_the_new_assets_are_served_and_use_no_html_sinks(collector: Collector, asset: str) -> None:
    import re

    response = requests.get(f"{collector.url}/static/{asset}", timeout=5)
    assert response.status_code == 200
    assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|eval\(",
                         response.text)
    assert "http://" not in response.text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in response.text
