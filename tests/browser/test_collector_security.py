"""The collector against hostile web pages, in Chromium: CSRF, DNS rebinding, CORS."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import BrowserContext, Page

from segment_client.collector import Collector
from tests._support.other_site import OtherSite

from .conftest import REBOUND_HOST, WRITE_KEY


def track(event: str = "Seeded") -> dict[str, Any]:
    return {"type": "track", "userId": "u-1", "event": event, "messageId": str(uuid.uuid4())}


def seed(collector: Collector) -> str:
    message = track()
    response = requests.post(f"{collector.url}/v1/batch", json={"batch": [message]},
                             auth=(WRITE_KEY, ""), timeout=5)
    assert response.status_code == 200
    return str(message["messageId"])


@pytest.fixture(name="page")
def _page(browser_context: BrowserContext) -> Iterator[Page]:
    """A tab where refused requests are expected: the console reports them (403s, CORS
    errors), so only script errors fail the test."""
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    yield tab
    tab.close()
    assert not errors, errors


@pytest.fixture(name="attacker", scope="module")
def _attacker() -> Iterator[OtherSite]:
    """Another origin on this machine (loopback, so Chromium lets it reach loopback)."""
    with OtherSite() as site:
        yield site


# Each attack as a page script would do it: simple requests (no preflight), results as
# {status} when readable, {opaque: true} when the browser hides the answer, {error}.
ATTACKS = """async (collector) => {
  const text = {"Content-Type": "text/plain"};
  const attempt = (url, init) => fetch(url, init).then(
    r => r.type === "opaque" ? {opaque: true} : r.text().then(body => ({status: r.status, body})),
    e => ({error: String(e)}));
  return {
    clear: await attempt(collector + "/v1/clear", {method: "POST", mode: "no-cors"}),
    faults: await attempt(collector + "/v1/faults", {method: "POST", mode: "no-cors",
      headers: text, body: JSON.stringify({faults: [{status: 500}]})}),
    inject: await attempt(collector + "/v1/batch", {method: "POST", mode: "no-cors",
      headers: text, body: JSON.stringify({writeKey: "WRITE_KEY",
        batch: [{type: "track", userId: "evil", event: "Injected"}]})}),
    read: await attempt(collector + "/v1/events", {}),
  };
}""".replace("WRITE_KEY", WRITE_KEY)


@pytest.fixture(name="open_collector")
def _open_collector(attacker: OtherSite) -> Iterator[Collector]:
    """A collector that lets the other origin send events (and nothing more)."""
    with Collector(allowed_origins=[attacker.origin]) as running:
        yield running


def refused(collector: Collector) -> dict[str, int]:
    return {r["path"]: r["status"] for r in collector.rejections()}


def test_a_page_on_another_origin_cannot_clear_inject_faults_send_or_read(
    page: Page, collector: Collector, attacker: OtherSite
) -> None:
    seeded = seed(collector)
    page.goto(f"{attacker.origin}/page.html")
    results = page.evaluate(ATTACKS, collector.url)
    # The browser sent every request (no-cors hides the answers from the page) ...
    assert results["clear"] == {"opaque": True}
    assert results["inject"] == {"opaque": True}
    assert "error" in results["read"]  # no CORS header: the page cannot read it
    # ... and the collector refused each one, and recorded why.
    assert refused(collector) == {"/v1/clear": 403, "/v1/faults": 403, "/v1/batch": 403,
                                  "/v1/events": 403}
    assert collector.faults()["faults"] == []
    assert [e["message"]["messageId"] for e in collector.events()] == [seeded]
    stats = collector.stats()
    assert (stats["total"], stats["rejected_requests"]) == (1, 4)


def test_a_rebound_host_name_is_refused_for_the_page_and_the_read_api(
    page: Page, collector: Collector
) -> None:
    seeded = seed(collector)
    rebound = f"http://{REBOUND_HOST}:{collector.port}"
    response = page.goto(f"{rebound}/")
    assert response is not None and response.status == 403
    assert "DNS rebinding" in page.content()
    # From the rebound page, the collector's routes look same-origin to the browser:
    # the Host check is what stops it.
    results = page.evaluate("""async () => {
      const get = await fetch("/v1/events");
      const clear = await fetch("/v1/clear", {method: "POST"});
      return {get: get.status, body: await get.text(), clear: clear.status};
    }""")
    assert (results["get"], results["clear"]) == (403, 403)
    assert seeded not in results["body"]
    assert [e["message"]["messageId"] for e in collector.events()] == [seeded]
    assert {r["status"] for r in collector.rejections()} == {403}


def test_an_allowed_origin_sends_events_with_cors_and_still_cannot_read_or_clear(
    page: Page, open_collector: Collector, attacker: OtherSite
) -> None:
    page.goto(f"{attacker.origin}/page.html")
    results = page.evaluate("""async (collector) => {
      const send = (headers, event) => fetch(collector + "/v1/batch", {method: "POST",
        headers, body: JSON.stringify({batch: [{type: "track", userId: "u", event}]})})
        .then(r => r.json().then(body => ({status: r.status, body})));
      const plain = await send({"Content-Type": "text/plain"}, "From analytics.js");
      const json = await send({"Content-Type": "application/json"}, "After a preflight");
      const read = await fetch(collector + "/v1/events").then(r => r.status, e => "blocked");
      const clear = await fetch(collector + "/v1/clear", {method: "POST", mode: "no-cors"})
        .then(r => r.type);
      return {plain, json, read, clear};
    }""", open_collector.url)
    assert results["plain"] == {"status": 200, "body": {"success": True}}
    assert results["json"] == {"status": 200, "body": {"success": True}}
    assert results["read"] == "blocked"
    assert results["clear"] == "opaque"
    events = [m["event"] for m in open_collector.messages()]
    assert events == ["From analytics.js", "After a preflight"]
    assert refused(open_collector) == {"/v1/events": 403, "/v1/clear": 403}
    # The preflight named exactly this origin.
    preflight = requests.options(
        f"{open_collector.url}/v1/batch", timeout=5,
        headers={"Origin": attacker.origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == attacker.origin
    assert json.dumps(dict(preflight.headers)).count("*") == 0
