"""The debugger page in a real browser, fed by a real Client through a real collector."""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from segment_client import Client
from segment_client.collector import Collector

from .conftest import WRITE_KEY

ROWS = "#stream .row"
EVENT_ROWS = "#stream .row[data-kind=event]"
CLOCK = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$")

MakeClient = Callable[..., Client]


# ---------- helpers ----------


def open_debugger(page: Page, collector: Collector, query: str = "") -> None:
    page.goto(f"{collector.url}/{query}")
    expect(page.locator("#status")).to_have_text("live")


def shown_ids(page: Page) -> list[str]:
    """messageIds of the event rows, top to bottom."""
    ids: list[str] = page.eval_on_selector_all(
        EVENT_ROWS, "rows => rows.map(r => r.dataset.messageId)"
    )
    return ids


def wait_for_rows(page: Page, expected: Sequence[str]) -> None:
    """Wait until the event rows are exactly `expected` (any order), else show the diff."""
    try:
        page.wait_for_function(
            """want => {
                const got = [...document.querySelectorAll('#stream .row[data-kind=event]')]
                    .map(r => r.dataset.messageId).sort();
                return JSON.stringify(got) === JSON.stringify(want);
            }""",
            arg=sorted(expected),
            timeout=10_000,
        )
    except PlaywrightTimeout:
        assert sorted(shown_ids(page)) == sorted(expected)


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def stored_events(collector: Collector) -> list[dict[str, Any]]:
    resp = requests.get(f"{collector.url}/v1/events", params={"limit": 1000}, timeout=5)
    resp.raise_for_status()
    events: list[dict[str, Any]] = resp.json()["events"]
    return events


def send(client: Client) -> None:
    assert client.flush(10), "the collector did not accept every message"


# ---------- tests ----------


def test_messages_appear_live_with_their_fields(
    page: Page, collector: Collector, make_live_client: MakeClient
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    open_debugger(page, collector)
    expect(page.locator("#empty")).to_contain_text("Waiting for messages")
    page.evaluate("window.__loadedOnce = 'yes'")

    client = make_live_client(flush_at=3)
    sent = [
        client.identify("u-1", {"email": "a@example.com", "plan": "pro"}),
        client.track("u-1", "Order Completed", {"revenue": 59.99}),
        client.page("u-1", "Docs", "Pricing", {"url": "https://example.com/pricing"}),
        client.screen("u-2", None, "Settings"),
        client.group("u-2", "acme-inc", {"name": "Acme"}),
        client.alias("anon-9", "u-2"),
        client.track(anonymous_id="anon-3", event="Product Viewed"),
    ]
    send(client)

    wait_for_rows(page, sent)
    # Newest first, and no reload happened on the way.
    assert shown_ids(page) == list(reversed(sent))
    assert page.evaluate("window.__loadedOnce") == "yes"
    expect(page.locator("#empty")).to_be_hidden()

    stored = {e["message"]["messageId"]: e for e in stored_events(collector)}
    expected_cells = {
        sent[0]: ("identify", "traits: email, plan", "u-1"),
        sent[1]: ("track", "Order Completed", "u-1"),
        sent[2]: ("page", "Docs / Pricing", "u-1"),
        sent[3]: ("screen", "Settings", "u-2"),
        sent[4]: ("group", "group acme-inc", "u-2"),
        sent[5]: ("alias", "anon-9 \u2192 u-2", "u-2"),
        sent[6]: ("track", "Product Viewed", "anon-3"),
    }
    for message_id, (kind, name, user) in expected_cells.items():
        row = page.locator(f"{ROWS}[data-message-id='{message_id}']")
        expect(row.locator(".cell.type")).to_have_text(kind)
        expect(row.locator(".cell.name .text")).to_have_text(name)
        expect(row.locator(".cell.user .text")).to_have_text(user)
        batch = stored[message_id]["batchId"]
        expect(row.locator(".cell.batch")).to_have_text("#" + batch.rsplit("-", 1)[1])
        assert row.locator(".cell.batch").get_attribute("title") == f"batch {batch}"
        assert CLOCK.match(row.locator(".cell.time").inner_text())
    # Anonymous-only messages say so.
    expect(page.locator(f"{ROWS}[data-message-id='{sent[6]}'] .anon")).to_have_text("anon")

    # Summary strip follows the store.
    expect(page.locator("#total")).to_have_text("7")
    expect(page.locator("#by-type .chip", has_text="track")).to_have_text("track2")
    expect(page.locator("#rate")).to_have_text("7")

    # Offline by construction: every request the page made went to the collector.
    assert requested
    assert all(url.startswith(collector.url + "/") for url in requested), requested


def test_each_filter_narrows_to_exactly_the_expected_rows_and_lands_in_the_url(
    page: Page, collector: Collector, make_live_client: MakeClient
) -> None:
    client = make_live_client(flush_at=20)
    signed_up_1 = client.track("u1", "Signed Up", {"plan": "pro"})
    order_1 = client.track("u1", "Order Completed", {"note": "needle-42 inside"})
    page_1 = client.page("u1", None, "Pricing")
    signed_up_2 = client.track("u2", "Signed Up", {"plan": "free"})
    identify_2 = client.identify("u2", {"email": "u2@example.com"})
    anon_order = client.track(anonymous_id="anon-7", event="Order Completed")
    identify_4 = client.identify("u4", {"plan": "pro"}, anonymous_id="anon-7")
    everything = [signed_up_1, order_1, page_1, signed_up_2, identify_2, anon_order, identify_4]
    send(client)

    open_debugger(page, collector)
    wait_for_rows(page, everything)

    page.select_option("#f-type", "page")
    wait_for_rows(page, [page_1])
    assert query_of(page) == {"type": ["page"]}

    page.select_option("#f-type", "identify")
    wait_for_rows(page, [identify_2, identify_4])
    assert query_of(page) == {"type": ["identify"]}

    page.select_option("#f-type", "")
    page.fill("#f-event", "Signed Up")
    wait_for_rows(page, [signed_up_1, signed_up_2])
    assert query_of(page) == {"event": ["Signed Up"]}

    page.fill("#f-event", "")
    page.fill("#f-user", "anon-7")  # matches anonymousId as well as userId
    wait_for_rows(page, [anon_order, identify_4])
    assert query_of(page) == {"user_id": ["anon-7"]}

    page.fill("#f-user", "u1")
    wait_for_rows(page, [signed_up_1, order_1, page_1])
    page.select_option("#f-type", "track")
    wait_for_rows(page, [signed_up_1, order_1])
    assert query_of(page) == {"type": ["track"], "user_id": ["u1"]}

    page.click("#reset")
    page.fill("#f-q", "needle-42")
    wait_for_rows(page, [order_1])
    assert query_of(page) == {"q": ["needle-42"]}

    # A shared link opens the same view, with the controls filled in.
    page.goto(f"{collector.url}/?type=track&event=Order+Completed")
    wait_for_rows(page, [order_1, anon_order])
    expect(page.locator("#f-type")).to_have_value("track")
    expect(page.locator("#f-event")).to_have_value("Order Completed")

    # Filtered views stay live: a new matching message arrives, a non-matching one does not.
    later = client.track("u9", "Order Completed")
    client.track("u9", "Signed Up")
    send(client)
    wait_for_rows(page, [order_1, anon_order, later])
    assert shown_ids(page)[0] == later

    page.click("#reset")
    assert query_of(page) == {}
    expect(page.locator(EVENT_ROWS)).to_have_count(len(everything) + 2)


def test_summary_chips_count_by_type_and_top_events_and_filter_on_click(
    page: Page, collector: Collector, make_live_client: MakeClient
) -> None:
    client = make_live_client(flush_at=50)
    for event, times in (("Alpha", 3), ("Beta", 2), ("Gamma", 1)):
        for _ in range(times):
            client.track("u1", event)
    client.identify("u1", {"a": 1})
    client.identify("u2", {"a": 2})
    send(client)

    open_debugger(page, collector)
    expect(page.locator(EVENT_ROWS)).to_have_count(8)
    expect(page.locator("#by-type .chip")).to_have_text(["track6", "identify2"])
    expect(page.locator("#top-events .chip")).to_have_text(["Alpha3", "Beta2", "Gamma1"])
    expect(page.locator("#total")).to_have_text("8")
    expect(page.locator("#batches")).to_have_text("1")

    page.locator("#top-events .chip", has_text="Beta").click()
    expect(page.locator(EVENT_ROWS)).to_have_count(2)
    assert query_of(page) == {"event": ["Beta"]}
    expect(page.locator("#f-event")).to_have_value("Beta")


def test_clicking_a_row_shows_its_full_json_with_copy(
    page: Page, collector: Collector, make_live_client: MakeClient
) -> None:
    client = make_live_client()
    properties = {"items": [{"sku": "A-1", "qty": 2}], "coupon": None, "name": "caf\u00e9 \u2615"}
    message_id = client.track("u-json", "Order Completed", properties, context={"ip": "10.0.0.1"})
    send(client)

    open_debugger(page, collector)
    row = page.locator(f"{ROWS}[data-message-id='{message_id}']")
    expect(row).to_have_attribute("aria-expanded", "false")
    row.click()
    expect(row).to_have_attribute("aria-expanded", "true")

    pre = page.locator(".detail pre.json")
    shown = json.loads(pre.inner_text())
    (stored,) = stored_events(collector)
    assert shown == stored["message"]
    assert shown["properties"] == properties
    assert shown["context"]["ip"] == "10.0.0.1"
    assert shown["context"]["library"]["name"] == "segment-client-python"
    assert "\n  " in pre.inner_text()  # pretty-printed, not one line

    page.click(".detail .copy")
    expect(page.locator(".detail .copy")).to_have_text("Copied")
    assert json.loads(page.evaluate("navigator.clipboard.readText()")) == shown

    row.click()
    expect(page.locator(".detail")).to_have_count(0)
    expect(row).to_have_attribute("aria-expanded", "false")


def test_html_in_names_ids_and_properties_is_shown_as_text_and_never_runs(
    page: Page, collector: Collector, make_live_client: MakeClient
) -> None:
    event = "<img src=x onerror=\"window.__xss='event'\">"
    user = "<script>window.__xss='user'</script>"
    properties = {
        "html": "<script>window.__xss='prop'</script>",
        "img": "<img src=x onerror=\"window.__xss='img'\">",
        "<b>key</b>": "</pre><svg onload=\"window.__xss='svg'\">",
    }
    client = make_live_client()
    message_id = client.track(user, event, properties)
    page_id = client.page(user, "<i>cat</i>", "<iframe src=javascript:alert(1)>")
    send(client)

    open_debugger(page, collector)
    row = page.locator(f"{ROWS}[data-message-id='{message_id}']")
    expect(row.locator(".cell.name .text")).to_have_text(event)
    expect(row.locator(".cell.user .text")).to_have_text(user)
    expect(page.locator(f"{ROWS}[data-message-id='{page_id}'] .cell.name .text")).to_have_text(
        "<i>cat</i> / <iframe src=javascript:alert(1)>"
    )
    expect(page.locator("#top-events .chip-name")).to_have_text([event])

    row.click()
    shown = json.loads(page.locator(".detail pre.json").inner_text())
    assert shown["properties"] == properties

    # The same untrusted text as a filter value round-trips through the URL as text.
    page.fill("#f-event", event)
    wait_for_rows(page, [message_id])
    assert query_of(page) == {"event": [event]}

    injected = page.evaluate(
        """() => document.querySelectorAll(
            'main img, main script, main svg, main iframe, main b, main i, #summary img'
        ).length"""
    )
    assert injected == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_duplicates_and_rejected_requests_are_marked(
    page: Page, collector: Collector, make_live_client: MakeClient
) -> None:
    client = make_live_client()
    first = client.track("u1", "Order Completed", {"attempt": 1}, message_id="order-77")
    send(client)
    client.track("u1", "Order Completed", {"attempt": 2}, message_id=first)
    other = client.track("u1", "Cart Viewed")
    send(client)

    bad_json = requests.post(
        f"{collector.url}/v1/batch",
        data=b'{"batch": [',
        headers={"Content-Type": "application/json"},
        auth=(WRITE_KEY, ""),
        timeout=5,
    )
    assert bad_json.status_code == 400
    errors: list[Any] = []
    wrong_key = Client("wrong-key", host=collector.url, max_retries=0,
                       on_error=lambda error, messages: errors.append(error))
    try:
        wrong_key.track("u1", "Sneaky")
        assert not wrong_key.flush(10)
    finally:
        wrong_key.close_and_flush(5)
    assert [getattr(e, "status", None) for e in errors] == [401]

    open_debugger(page, collector)
    expect(page.locator(EVENT_ROWS)).to_have_count(3)
    dup_rows = page.locator(f"{EVENT_ROWS}.duplicate")
    expect(dup_rows).to_have_count(1)
    expect(dup_rows.locator(".badge.dup")).to_have_text("duplicate")
    # The newer copy is the duplicate; the original is not marked.
    assert shown_ids(page) == [other, first, first]
    expect(page.locator(EVENT_ROWS).nth(1)).to_have_class(re.compile(r"\bduplicate\b"))
    expect(page.locator(EVENT_ROWS).nth(2)).not_to_have_class(re.compile(r"\bduplicate\b"))

    rejections = requests.get(f"{collector.url}/v1/rejections", timeout=5).json()["rejections"]
    rejected = page.locator(f"{ROWS}.rejected")
    expect(rejected).to_have_count(len(rejections))
    assert {r["status"] for r in rejections} == {400, 401}
    for item in rejections:
        shown = page.locator(f"{ROWS}[data-id='r{item['id']}']")
        expect(shown.locator(".badge.status")).to_have_text(str(item["status"]))
        expect(shown.locator(".reason")).to_have_text(item["reason"])
        expect(shown.locator(".cell.path")).to_have_text(item["path"])

    expect(page.locator("#duplicates")).to_have_text("1")
    expect(page.locator("#rejected")).to_have_text(str(len(rejections)))

    # Rejections belong to the unfiltered view and to their own pseudo-type.
    page.select_option("#f-type", "track")
    expect(page.locator(EVENT_ROWS)).to_have_count(3)
    expect(rejected).to_have_count(0)
    page.select_option("#f-type", "rejected")
    expect(rejected).to_have_count(len(rejections))
    expect(page.locator(EVENT_ROWS)).to_have_count(0)


def test_pause_holds_new_rows_until_resume_and_clear_empties_the_store(
    page: Page, collector: Collector, make_live_client: MakeClient
) -> None:
    client = make_live_client()
    first = client.track("u1", "Before Pause")
    send(client)
    open_debugger(page, collector)
    wait_for_rows(page, [first])

    page.click("#pause")
    expect(page.locator("#pause")).to_have_text("Resume")
    expect(page.locator("#status")).to_have_text("paused")
    held = client.track("u1", "While Paused")
    send(client)
    # The counters keep moving while the stream is held.
    expect(page.locator("#total")).to_have_text("2")
    assert shown_ids(page) == [first]

    page.click("#pause")
    expect(page.locator("#status")).to_have_text("live")
    wait_for_rows(page, [first, held])
    assert shown_ids(page) == [held, first]

    page.click("#clear")
    expect(page.locator(ROWS)).to_have_count(0)
    expect(page.locator("#total")).to_have_text("0")
    expect(page.locator("#empty")).to_be_visible()
    assert stored_events(collector) == []

    after = client.track("u1", "After Clear")
    send(client)
    wait_for_rows(page, [after])


def burst(collector: Collector, batches: int = 40, size: int = 50) -> None:
    """2,000 messages in 40 back-to-back requests (well under a second)."""
    with requests.Session() as session:
        for b in range(batches):
            batch = [{"type": "track", "userId": f"u-{b}", "event": "Burst",
                      "messageId": f"burst-{b}-{i}"} for i in range(size)]
            response = session.post(f"{collector.url}/v1/batch", json={"batch": batch},
                                    auth=(WRITE_KEY, ""), timeout=10)
            assert response.status_code == 200


def rows_state(page: Page) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = page.eval_on_selector_all(EVENT_ROWS, """rows => rows.map(r => ({
        id: Number(r.dataset.id), batch: r.dataset.batch,
        label: r.querySelector('.cell.batch').textContent,
        hue: Number(r.querySelector('.cell.batch').style.getPropertyValue('--batch-hue')),
    }))""")
    return rows


def assert_newest_rows_and_distinct_batches(page: Page, last_id: int) -> None:
    expect(page.locator(EVENT_ROWS)).to_have_count(1000)
    page.wait_for_function(
        "([selector, id]) => document.querySelector(selector).dataset.id === String(id)",
        arg=[EVENT_ROWS, last_id])
    rows = rows_state(page)
    # Exactly the newest 1,000, newest first, nothing missing between them.
    assert [row["id"] for row in rows] == list(range(last_id, last_id - 1000, -1))
    labels: dict[str, set[str]] = {}
    for row in rows:
        labels.setdefault(row["label"], set()).add(row["batch"])
    assert all(len(batches) == 1 for batches in labels.values()), labels  # unique labels
    assert len(labels) == 20  # 1,000 rows of 50-message batches
    order = [row for i, row in enumerate(rows) if i == 0 or row["batch"] != rows[i - 1]["batch"]]
    for newer, older in itertools.pairwise(order):
        gap = abs(newer["hue"] - older["hue"]) % 360
        assert min(gap, 360 - gap) >= 60, (newer, older)


def test_a_burst_of_2000_messages_shows_exactly_the_newest_1000_with_distinct_batches(
    page: Page, collector: Collector, make_live_client: MakeClient
) -> None:
    client = make_live_client()
    first = client.track("u1", "Before The Burst")
    send(client)
    open_debugger(page, collector)
    wait_for_rows(page, [first])

    burst(collector)  # ids 2..2001, while the page polls
    assert_newest_rows_and_distinct_batches(page, 2001)
    # Batches 2 and 20-29 of the old labels (the id's first 8 characters) read alike.
    labels = {row["label"] for row in rows_state(page)}
    assert labels == {f"#{n}" for n in range(22, 42)}
    # How many of the burst one answer passed over depends on the poll's timing.
    found = re.search(r"Skipped: (\d+)", page.locator("#more").inner_text())
    before = int(found.group(1)) if found else 0
    assert 0 <= before <= 1000

    # Paused, the whole burst arrives in one answer: the page says what it passed over.
    page.click("#pause")
    burst(collector)  # ids 2002..4001
    page.click("#pause")
    assert_newest_rows_and_distinct_batches(page, 4001)
    expect(page.locator("#more")).to_be_visible()
    expect(page.locator("#more")).to_contain_text(f"Skipped: {before + 1000} messages")


def order_plan(message: dict[str, Any]) -> list[str]:
    """A one-rule tracking plan: Order Completed needs a numeric revenue."""
    if message.get("event") != "Order Completed":
        return []
    revenue = message.get("properties", {}).get("revenue")
    if isinstance(revenue, int | float):
        return []
    return [f"properties.revenue: expected a number, got {type(revenue).__name__}"]


@pytest.mark.parametrize("validator", [order_plan])
def test_tracking_plan_violations_show_on_the_row(
    page: Page, collector: Collector, make_live_client: MakeClient
) -> None:
    client = make_live_client()
    good = client.track("u1", "Order Completed", {"revenue": 10})
    bad = client.track("u1", "Order Completed", {"revenue": "ten"})
    other = client.track("u1", "Cart Viewed")
    send(client)

    open_debugger(page, collector)
    wait_for_rows(page, [good, bad, other])
    flagged = page.locator(f"{EVENT_ROWS}.violating")
    expect(flagged).to_have_count(1)
    assert flagged.get_attribute("data-message-id") == bad
    expect(flagged.locator(".badge.viol")).to_have_text("1 violation")
    expect(flagged.locator(".violation")).to_have_text(
        ["properties.revenue: expected a number, got str"]
    )
    expect(page.locator("#violations")).to_have_text("1")
    expect(page.locator("#violations-stat")).to_be_visible()

    flagged.click()
    expect(page.locator(".detail .viol-list li")).to_have_text(
        ["properties.revenue: expected a number, got str"]
    )


def _realistic_traffic(client: Client, count: int) -> int:
    """A few hundred messages shaped like a small shop's backend; returns how many."""
    rnd = random.Random(8)
    users = [f"user-{n:03d}" for n in range(1, 25)]
    events = [
        ("Product Viewed", 30), ("Product Added", 14), ("Checkout Started", 6),
        ("Order Completed", 5), ("Signed Up", 3), ("Coupon Applied", 2),
    ]
    names = [name for name, weight in events for _ in range(weight)]
    sent = 0
    for n in range(count):
        user = rnd.choice(users)
        roll = rnd.random()
        if roll < 0.62:
            name = rnd.choice(names)
            props: dict[str, Any] = {"product_id": f"sku-{rnd.randint(100, 999)}",
                                     "price": round(rnd.uniform(5, 120), 2)}
            if name == "Order Completed":
                revenue = round(rnd.uniform(20, 300), 2)
                # Now and then a backend sends revenue as text: the plan flags it.
                props = {"order_id": f"o-{n}",
                         "revenue": f"{revenue}" if rnd.random() < 0.25 else revenue}
            if rnd.random() < 0.08:
                client.track(anonymous_id=f"anon-{rnd.randint(1000, 9999)}", event=name,
                             properties=props)
            else:
                client.track(user, name, props)
        elif roll < 0.82:
            client.page(user, "Shop", rnd.choice(["Home", "Search", "Product", "Cart"]),
                        {"path": "/shop"})
        elif roll < 0.92:
            client.identify(user, {"email": f"{user}@example.com", "plan": rnd.choice(
                ["free", "pro", "team"])})
        elif roll < 0.97:
            client.group(user, rnd.choice(["acme", "globex", "initech"]), {"seats": 5})
        else:
            client.screen(user, None, rnd.choice(["Settings", "Orders"]))
        sent += 1
    return sent


@pytest.mark.parametrize("validator", [order_plan])
def test_screenshots_with_a_few_hundred_messages(
    page: Page, collector: Collector, make_live_client: MakeClient, docs_img: Path
) -> None:
    client = make_live_client(flush_at=40)
    sent = _realistic_traffic(client, 320)
    send(client)
    replayed = client.track("user-007", "Order Completed", {"order_id": "o-1", "revenue": 42.0},
                            message_id="order-o-1")
    send(client)
    client.track("user-007", "Order Completed", {"order_id": "o-1", "revenue": 42.0},
                 message_id=replayed)
    flagged = client.track("user-011", "Order Completed", {"order_id": "o-2", "revenue": "59.90"})
    client.track("user-003", "Product Viewed", {"product_id": "sku-101", "price": 19.0})
    send(client)
    requests.post(f"{collector.url}/v1/batch", data=b"{oops", timeout=5,
                  auth=(WRITE_KEY, ""))
    total = sent + 4

    open_debugger(page, collector)
    expect(page.locator("#total")).to_have_text(str(total))
    expect(page.locator(EVENT_ROWS)).to_have_count(total)
    page.set_viewport_size({"width": 1280, "height": 1100})
    expanded = page.locator(f"{ROWS}[data-message-id='{flagged}']")
    expanded.click()
    wide = docs_img / "debugger.png"
    page.screenshot(path=str(wide))

    page.set_viewport_size({"width": 390, "height": 844})
    expanded.click()  # fold it again: room for the list
    phone = docs_img / "debugger-phone.png"
    page.screenshot(path=str(phone))
    # Readable on a phone: nothing is wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    for path in (wide, phone):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


UNSAFE_SINKS = re.compile(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|eval\(")


@pytest.mark.parametrize("asset", ["debugger.js", "debugger.css"])
def test_static_assets_are_served_and_the_script_uses_no_html_sinks(
    collector: Collector, asset: str
) -> None:
    resp = requests.get(f"{collector.url}/static/{asset}", timeout=5)
    assert resp.status_code == 200
    assert not UNSAFE_SINKS.search(resp.text)
