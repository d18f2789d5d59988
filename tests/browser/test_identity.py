"""The real analytics.js (npm @segment/analytics-next) and a Flask backend against the
collector, in Chromium: stitched profiles, Unify splits, origins, the Profiles view."""

from __future__ import annotations

import importlib.util
import json
import re
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from playwright.sync_api import BrowserContext, Page, Request, expect
from werkzeug.serving import BaseWSGIServer, make_server

from segment_client import Client
from segment_client.collector import Collector
from segment_client.integrations.flask import current_client

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "tests" / "_support" / "js" / "segment-snippet.js"
KEY = "identity-test-key"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "browser_identity_app", ROOT / "examples" / "browser_identity" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shop_app = _load_example()


class _Lazy:
    """A WSGI app set after the server is bound (the collector needs the port first)."""

    def __init__(self) -> None:
        self.app: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


def _serve(wsgi: Any) -> tuple[BaseWSGIServer, threading.Thread, str]:
    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-shop", daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_port}"


class Shop:
    """The example app on one port, a collector on another, allowed to talk."""

    def __init__(self, analytics_next: Path) -> None:
        self._lazy = _Lazy()
        self.server, self.thread, self.origin = _serve(self._lazy)
        self.collector = Collector(write_key=KEY, analytics_js_dir=analytics_next,
                                   allowed_origins=[self.origin])
        self.collector.start()
        self.app = shop_app.create_app({
            "SEGMENT_COLLECTOR": self.collector.url,
            "SEGMENT_WRITE_KEY": KEY,
            "SEGMENT_OPTIONS": {"max_retries": 0},
        })
        self._lazy.app = self.app

    def flush_server(self) -> None:
        assert current_client(self.app).flush(10)

    def close(self) -> None:
        current_client(self.app).close_and_flush(5)
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.collector.close()

    def wait(self, **counts: int) -> list[dict[str, Any]]:
        """Block until the store holds at least `counts[type]` messages of each type;
        returns every message, oldest first."""
        found = self.collector.store.wait(
            lambda store: all(store.by_type[kind] >= n for kind, n in counts.items()),
            timeout=15)
        messages = self.collector.messages()
        assert found, [(m.get("type"), m.get("event"), m.get("userId")) for m in messages]
        return messages

    def profile_of(self, message_id: str) -> dict[str, Any]:
        [row] = [e for e in self.collector.events() if e["message"].get("messageId") == message_id]
        resp = requests.get(f"{self.collector.url}/v1/profiles/by-event/{row['id']}", timeout=5)
        resp.raise_for_status()
        profile: dict[str, Any] = resp.json()
        return profile


@pytest.fixture
def shop(analytics_next: Path, browser_context: BrowserContext) -> Iterator[Shop]:
    # Cookies are per host, not per port: each test starts as a new visitor.
    browser_context.clear_cookies()
    running = Shop(analytics_next)
    yield running
    running.close()


@pytest.fixture
def requests_seen(page: Page) -> list[str]:
    """Every URL the tab requests; anything off 127.0.0.1 is aborted (and listed)."""
    seen: list[str] = []

    def on_request(request: Request) -> None:
        seen.append(request.url)

    page.on("request", on_request)
    page.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"), lambda route: route.abort())
    return seen


def _library(message: dict[str, Any]) -> str:
    return str(message.get("context", {}).get("library", {}).get("name"))


def _browser(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in messages if _library(m) == "analytics.js" and m["type"] == kind]


def _server(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in messages if _library(m) == "segment-client-python" and m["type"] == kind]


def _anonymous_id(page: Page) -> str:
    page.wait_for_function("() => window.analytics && window.analytics.initialized")
    value: str = page.evaluate("() => analytics.user().anonymousId()")
    return value


def _click(page: Page, button: str, done: str) -> None:
    page.click(f"#{button}")
    expect(page.locator("#done")).to_contain_text(done)


# ---------- Segment's snippet, pointed at the collector ----------


def _snippet(collector: str, *, with_url: bool = False) -> str:
    """The standard snippet with the two documented changes (and optionally `u`)."""
    text = SNIPPET.read_text().split("\n", 2)[2].strip()
    changed = text.replace("https://cdn.segment.com/analytics.js", f"{collector}/analytics.js")
    changed = changed.replace('analytics._writeKey="YOUR_WRITE_KEY";',
                              f'analytics._cdn="{collector}";analytics._writeKey="YOUR_WRITE_KEY";')
    if with_url:
        changed = changed.replace("p:location.pathname,", "p:location.pathname,u:location.href,")
    assert changed.count(collector) == 2
    return changed


def test_the_example_snippet_is_segments_with_the_documented_changes() -> None:
    assert _snippet("http://127.0.0.1:8787", with_url=True) == shop_app.SNIPPET


def _serve_page(html: str) -> tuple[BaseWSGIServer, threading.Thread, str]:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html")])
        return [html.encode()]

    return _serve(app)


@pytest.mark.parametrize("canonical", [True, False], ids=["canonical-link", "no-canonical"])
def test_the_standard_snippet_with_two_lines_changed(
    shop: Shop, browser_context: BrowserContext, canonical: bool
) -> None:
    # Only the script URL and the _cdn line changed. analytics-next 1.84 reads the
    # buffered page() context's `u` (the URL), which this snippet version does not
    # push: on a page without a canonical link that buffered call fails (TypeError) and
    # is lost; calls made after loading arrive either way.
    snippet = _snippet(shop.collector.url).replace("YOUR_WRITE_KEY", KEY)
    head = '<link rel="canonical" href="/landing">' if canonical else ""
    server, thread, origin = _serve_page(
        f'<!doctype html><title>t</title><link rel="icon" href="data:,">{head}'
        f"<script>{snippet}</script>")
    shop.collector.policy.allowed_origins = frozenset({origin})
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        tab.goto(origin + "/")
        tab.wait_for_function("() => window.analytics && window.analytics.initialized")
        tab.evaluate("() => analytics.track('After Load')")
        messages = shop.wait(track=1)
    finally:
        tab.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
    if canonical:
        messages = shop.wait(track=1, page=1)
        [page_call] = _browser(messages, "page")
        assert page_call["context"]["page"]["path"] == "/landing"
        assert errors == []
    else:
        assert _browser(messages, "page") == []
        assert any("reading 'indexOf'" in e for e in errors), errors
    assert [m["event"] for m in _browser(messages, "track")] == ["After Load"]


def test_the_npm_package_pointed_at_the_collector(
    shop: Shop, browser_context: BrowserContext, analytics_next: Path
) -> None:
    # The npm entry point (its UMD build stands in for an app's bundle) with `cdnURL`:
    # settings from the collector, every call to the host they name.
    bundle = (analytics_next / "@segment/analytics-next/dist/umd/index.js").read_bytes()
    page_html = (
        '<!doctype html><title>npm</title><link rel="icon" href="data:,">'
        '<script src="/bundle.js"></script><script>'
        f'var analytics = AnalyticsNext.AnalyticsBrowser.load('
        f'{{writeKey: "{KEY}", cdnURL: "{shop.collector.url}"}});'
        'analytics.page(); analytics.identify("npm-user", {plan: "pro"});</script>'
    ).encode()

    def app(environ: Any, start_response: Any) -> list[bytes]:
        js = environ["PATH_INFO"] == "/bundle.js"
        start_response("200 OK", [("Content-Type", "text/javascript" if js else "text/html")])
        return [bundle if js else page_html]

    server, thread, origin = _serve(app)
    shop.collector.policy.allowed_origins = frozenset({origin})
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    seen: list[str] = []
    tab.on("request", lambda request: seen.append(request.url))
    tab.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"), lambda route: route.abort())
    try:
        tab.goto(origin + "/")
        messages = shop.wait(page=1, identify=1)
    finally:
        tab.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
    [page_call] = _browser(messages, "page")
    [identify] = _browser(messages, "identify")
    version = json.loads(
        (analytics_next / "@segment/analytics-next/package.json").read_text())["version"]
    assert page_call["context"]["library"] == {"name": "analytics.js",
                                               "version": f"next-{version}"}
    assert identify["userId"] == "npm-user" and identify["anonymousId"] == page_call[
        "anonymousId"]
    assert errors == []
    assert all(url.startswith("http://127.0.0.1:") for url in seen), seen


# ---------- browser and server in one profile ----------


def _event_id(shop: Shop, message: dict[str, Any]) -> int:
    [row] = [e for e in shop.collector.events()
             if e["message"].get("messageId") == message["messageId"]]
    return int(row["id"])


def test_browser_and_server_events_stitch_into_one_profile(
    shop: Shop, page: Page, requests_seen: list[str], docs_img: Path
) -> None:
    page.goto(shop.origin + "/")
    messages = shop.wait(page=1)
    anonymous_id = _anonymous_id(page)
    [first_page] = _browser(messages, "page")
    # analytics.js's own fields, as it sent them.
    assert first_page["anonymousId"] == anonymous_id
    assert first_page["messageId"].startswith("ajs-next-")
    assert first_page["context"]["library"]["version"].startswith("next-")
    assert first_page["context"]["page"]["path"] == "/"
    assert first_page["context"]["page"]["url"] == shop.origin + "/"
    assert first_page["context"]["page"]["title"] == "Shop"
    assert "Chrome" in first_page["context"]["userAgent"]
    assert isinstance(first_page["integrations"], dict) and first_page["timestamp"]

    _click(page, "login", "logged in ada")
    _click(page, "buy", "bought")
    shop.flush_server()
    # analytics.js's identify and track; the backend's identify (once per session, from
    # SEGMENT_IDENTIFY) and track.
    messages = shop.wait(identify=2, track=2)
    [identify] = _browser(messages, "identify")
    assert identify["userId"] == "ada" and identify["anonymousId"] == anonymous_id
    assert identify["traits"] == {"email": "ada@example.com"}
    [click] = _browser(messages, "track")
    assert (click["event"], click["properties"], click["userId"]) == (
        "Buy Clicked", {"sku": "tea"}, "ada")
    [order] = _server(messages, "track")
    # The backend read the browser's cookie: the same anonymousId, and the user.
    assert (order["event"], order["anonymousId"], order["userId"]) == (
        "Order Completed", anonymous_id, "ada")
    assert order["context"]["page"]["path"] == "/api/buy"

    profile = shop.profile_of(order["messageId"])
    assert shop.profile_of(first_page["messageId"])["id"] == profile["id"]
    assert {(i["type"], i["value"]) for i in profile["identifiers"]} == {
        ("user_id", "ada"), ("anonymous_id", anonymous_id), ("email", "ada@example.com")}
    sources = {e["source"]["kind"] for e in profile["timeline"]}
    assert sources == {"browser", "segment-client"}
    assert profile["lints"] == []

    # A reload keeps the visitor: same cookie, same profile.
    page.reload()
    messages = shop.wait(page=2)
    assert _anonymous_id(page) == anonymous_id
    assert shop.profile_of(_browser(messages, "page")[1]["messageId"])["id"] == profile["id"]

    # Log out (analytics.reset: a new anonymousId), log in as someone else: a new profile.
    _click(page, "logout", "logged out")
    page.fill("#user", "bob")
    _click(page, "login", "logged in bob")
    _click(page, "buy", "bought")
    shop.flush_server()
    messages = shop.wait(identify=4, track=4)
    second = _anonymous_id(page)
    assert second != anonymous_id
    bob_order = _server(messages, "track")[1]
    assert (bob_order["userId"], bob_order["anonymousId"]) == ("bob", second)
    bob = shop.profile_of(bob_order["messageId"])
    assert bob["id"] != profile["id"]
    assert ("user_id", "ada") not in {(i["type"], i["value"]) for i in bob["identifiers"]}
    ada = shop.profile_of(order["messageId"])
    assert ("anonymous_id", second) not in {(i["type"], i["value"]) for i in ada["identifiers"]}

    # The Profiles view of ada: browser and server events in one timeline.
    page.goto(f"{shop.collector.url}/static/profiles.html?event={_event_id(shop, order)}")
    expect(page.locator("#profile h2")).to_have_text("user_id: ada")
    expect(page.locator("#timeline .tl-event[data-source=browser]")).to_have_count(4)
    expect(page.locator("#timeline .tl-event[data-source=segment-client]")).to_have_count(2)
    page.screenshot(path=str(docs_img / "profiles-stitched.png"))

    # Nothing came from anywhere but the two local servers.
    assert requests_seen and all(url.startswith("http://127.0.0.1:") for url in requests_seen)
    assert any("/analytics.js/v2/" in url for url in requests_seen)
    assert any(f"/v1/projects/{KEY}/settings" in url for url in requests_seen)


def test_switching_user_without_reset_splits(shop: Shop, page: Page) -> None:
    # No analytics.reset() between two users on one browser: analytics.js itself starts
    # a new anonymousId when the userId changes, so the two profiles split cleanly.
    page.goto(shop.origin + "/")
    shop.wait(page=1)
    anonymous_id = _anonymous_id(page)
    _click(page, "login", "logged in ada")
    page.fill("#user", "carol")
    _click(page, "login", "logged in carol")
    messages = shop.wait(identify=2)
    ada_call, carol_call = _browser(messages, "identify")
    assert ada_call["anonymousId"] == anonymous_id != carol_call["anonymousId"]
    ada, carol = shop.profile_of(ada_call["messageId"]), shop.profile_of(carol_call["messageId"])
    assert ada["id"] != carol["id"]
    assert carol["refusals"] == [] and carol["merges"] == []
    assert {(i["type"], i["value"]) for i in carol["identifiers"]} == {
        ("user_id", "carol"), ("anonymous_id", carol_call["anonymousId"]),
        ("email", "carol@example.com")}


# ---------- origins ----------


def test_a_page_on_a_disallowed_origin_cannot_send(
    shop: Shop, browser_context: BrowserContext, analytics_next: Path
) -> None:
    snippet = _snippet(shop.collector.url, with_url=True).replace("YOUR_WRITE_KEY", KEY)
    server, thread, origin = _serve_page(
        f"<!doctype html><title>other</title><script>{snippet}</script>")
    tab = browser_context.new_page()  # not the `page` fixture: errors are expected here
    try:
        tab.goto(origin + "/")
        # The page's own direct attempt, as analytics.js would make it.
        outcome = tab.evaluate(
            """([url, key]) => fetch(url, {method: "POST", body: JSON.stringify(
                  {type: "track", event: "x", anonymousId: "a"}), headers: {
                  "Content-Type": "text/plain", Authorization: "Basic " + btoa(key + ":")}})
                .then(r => "answered " + r.status, e => "failed: " + e.message)""",
            [shop.collector.url + "/v1/t", KEY],
        )
        assert outcome.startswith("failed"), outcome
        # The snippet's settings request was refused too (both recorded).
        assert shop.collector.store.wait(lambda store: store.rejected_requests >= 2, 15)
    finally:
        tab.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert shop.collector.stats()["total"] == 0
    reasons = [r["reason"] for r in shop.collector.rejections()]
    assert any(f"CORS preflight from {origin} refused" in r for r in reasons), reasons
    assert any(f"browser requests from {origin} may not load analytics.js settings" in r
               for r in reasons), reasons
    # An allowed origin is answered with CORS for exactly that origin.
    allowed = requests.options(f"{shop.collector.url}/v1/t", timeout=5, headers={
        "Origin": shop.origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == shop.origin
    refused = requests.options(f"{shop.collector.url}/v1/t", timeout=5, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"})
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers


# ---------- the Profiles view ----------


def _seed(collector: Collector, users: int, events: int) -> None:
    """`events` messages for `users` users, half from a browser library, half from us."""
    per_user = events // users
    batch: list[dict[str, Any]] = []
    for n in range(users):
        for k in range(per_user):
            browser = k % 2 == 0
            message: dict[str, Any] = {
                "type": "identify" if k == 1 else ("page" if browser else "track"),
                "anonymousId": f"anon-{n:03d}",
                "messageId": f"m-{n}-{k}",
                "timestamp": f"2026-12-01T09:{k // 60:02d}:{k % 60:02d}.000Z",
                "context": {"library": {"name": "analytics.js", "version": "next-1.84.3"}
                            if browser else {"name": "segment-client-python", "version": "1"}},
            }
            if k >= 1:
                message["userId"] = f"user-{n:03d}"
            if message["type"] == "track":
                message["event"] = "Order Completed"
            elif message["type"] == "page":
                message["name"] = "Home"
            else:
                message["traits"] = {"email": f"user-{n:03d}@example.com", "plan": "pro"}
            batch.append(message)
            if len(batch) == 250:
                _post(collector, batch)
                batch = []
    if batch:
        _post(collector, batch)


def _post(collector: Collector, batch: list[dict[str, Any]]) -> None:
    resp = requests.post(f"{collector.url}/v1/batch", json={"batch": batch}, timeout=10,
                         auth=(KEY, ""))
    assert resp.status_code == 200, resp.text


@pytest.fixture
def big_collector() -> Iterator[Collector]:
    with Collector(write_key=KEY) as collector:
        yield collector


def test_profiles_view_with_200_users_and_5000_events(
    big_collector: Collector, page: Page, docs_img: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(big_collector, 200, 5000)
    assert big_collector.stats()["total"] == 5000
    start = time.perf_counter()
    page.goto(f"{big_collector.url}/static/profiles.html")
    expect(page.locator("#p-count")).to_have_text("200 profiles")
    list_time = time.perf_counter() - start  # the graph built from 5,000 stored events
    expect(page.locator("#views a", has_text="Profiles")).to_have_attribute(
        "aria-current", "page")
    timings = []
    for n in (7, 42, 120, 199, 3, 77, 150, 11, 188, 64):
        item = page.locator(f".p-item:has(.who:text-is('user_id: user-{n:03d}'))")
        start = time.perf_counter()
        item.click()
        expect(page.locator("#timeline .tl-event")).to_have_count(25)
        expect(page.locator("#profile h2")).to_have_text(f"user_id: user-{n:03d}")
        timings.append(time.perf_counter() - start)
    chips = page.locator("#identifiers .id-chip")
    expect(chips).to_have_count(3)
    assert page.locator("#timeline .tl-event[data-source=browser]").count() == 13
    assert page.locator("#timeline .tl-event[data-source=segment-client]").count() == 12
    page.screenshot(path=str(docs_img / "profiles.png"))
    with capsys.disabled():
        print(f"\nProfiles view, 200 users / 5,000 events: first list {list_time * 1000:.0f}"
              f" ms; a profile opens in {statistics.median(timings) * 1000:.0f} ms median, "
              f"{max(timings) * 1000:.0f} ms max (of {len(timings)})")
    # A search narrows the list.
    page.fill("#p-search", "user-19")
    expect(page.locator("#p-count")).to_have_text("10 of 200 profiles")


def test_a_click_from_an_event_row_opens_its_profile(shop: Shop, page: Page,
                                                     docs_img: Path) -> None:
    browser = {"library": {"name": "analytics.js", "version": "next-1.84.3"}}
    _post(shop.collector, [
        {"type": "page", "name": "Home", "anonymousId": "visitor-1", "context": browser},
        {"type": "identify", "userId": "dana", "anonymousId": "visitor-1",
         "traits": {"plan": "pro"}, "context": browser},
    ])
    with Client(KEY, host=shop.collector.url, max_retries=0) as client:
        client.track("dana", "Order Completed", properties={"revenue": 10})
        client.track("dana", "Order Completed", anonymous_id="made-up-on-the-server")
        assert client.flush(10)
    page.goto(shop.collector.url + "/")
    expect(page.locator("#stream .row[data-kind=event]")).to_have_count(4)
    row = page.locator("#stream .row[data-kind=event][data-type=page]")
    expect(row.locator(".src-mark")).to_have_text("browser")
    row.locator("a.profile-link").click()
    expect(page).to_have_url(re.compile(r"/static/profiles\.html\?profile=p\d+$"))
    expect(page.locator("#timeline .tl-event")).to_have_count(4)
    expect(page.locator("#lints li.lint")).to_have_count(1)
    expect(page.locator("#lints li.lint")).to_have_attribute(
        "data-code", "server_anonymous_id_unknown")
    page.screenshot(path=str(docs_img / "profiles-lint.png"))
    body = json.loads(requests.get(f"{shop.collector.url}/v1/lints", timeout=5).text)
    assert [item["code"] for item in body["lints"]] == ["server_anonymous_id_unknown"]
