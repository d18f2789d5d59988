"""The identity read API, analytics.js's routes and CORS, over HTTP (no browser)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from segment_client import Client
from segment_client._cli import main
from segment_client.collector import Collector

KEY = "routes-key"
ALLOWED = "http://127.0.0.1:3000"
BROWSER = {"library": {"name": "analytics.js", "version": "next-1.84.3"}}


@pytest.fixture
def collector(analytics_next: Path) -> Iterator[Collector]:
    with Collector(write_key=KEY, analytics_js_dir=analytics_next,
                   allowed_origins=[ALLOWED]) as running:
        yield running


def post(collector: Collector, batch: list[dict[str, Any]]) -> None:
    resp = requests.post(f"{collector.url}/v1/batch", json={"batch": batch}, auth=(KEY, ""),
                         timeout=5)
    assert resp.status_code == 200, resp.text


def get(collector: Collector, path: str, status: int = 200) -> Any:
    resp = requests.get(collector.url + path, timeout=5)
    assert resp.status_code == status, resp.text
    return resp.json()


def basic(key: str = KEY) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


# ---------- the read API ----------


def visit(collector: Collector) -> None:
    post(collector, [
        {"type": "page", "anonymousId": "a1", "messageId": "m1", "context": BROWSER},
        {"type": "track", "event": "Paid", "userId": "u1", "messageId": "m2"},
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "m3",
         "traits": {"plan": "pro"}, "context": BROWSER},
        {"type": "page", "anonymousId": "a2", "messageId": "m4", "context": BROWSER},
    ])


def test_profiles_and_one_profile(collector: Collector) -> None:
    visit(collector)
    body = get(collector, "/v1/profiles")
    assert body["total"] == 2 and body["lints"] == {} and body["unplaced"] == []
    first, second = body["profiles"]
    assert (first["id"], first["events"], first["merges"]) == ("p1", 3, 1)
    assert first["sources"] == {"browser": 2, "unknown": 1}
    profile = get(collector, "/v1/profiles/p1")
    assert [e["id"] for e in profile["timeline"]] == [1, 2, 3]
    assert profile["lints"] == [] and profile["traits"] == {"plan": "pro"}
    # The absorbed profile (the server's, p2) leads to the one it joined.
    assert profile["merges"][0]["absorbed"] == "p2"
    assert get(collector, "/v1/profiles/p2")["id"] == "p1"
    assert get(collector, "/v1/profiles/p1/timeline")["timeline"] == profile["timeline"]
    assert get(collector, "/v1/profiles/p1/lints") == {"id": "p1", "lints": []}
    assert get(collector, "/v1/profiles/by-event/4")["id"] == second["id"]


def test_not_found_and_bad_ids(collector: Collector) -> None:
    visit(collector)
    assert "no profile 'p9'" in get(collector, "/v1/profiles/p9", 404)["error"]
    assert "event 99 is in no profile" in get(collector, "/v1/profiles/by-event/99",
                                              404)["error"]
    assert "integer" in get(collector, "/v1/profiles/by-event/x", 400)["error"]
    get(collector, "/v1/profiles/p1/other", 404)
    get(collector, "/v1/profiles/", 404)


def test_events_are_marked_with_source_and_profile(collector: Collector) -> None:
    visit(collector)
    with Client(KEY, host=collector.url, max_retries=0) as client:
        client.track("u1", "Server Side")
        assert client.flush(5)
    rows = get(collector, "/v1/events?limit=10")["events"]
    marks = {row["message"]["messageId"]: (row["source"]["kind"], row["profile"])
             for row in rows}
    server_id = next(k for k in marks if k not in ("m1", "m2", "m3", "m4"))
    assert marks == {"m1": ("browser", "p1"), "m2": ("unknown", "p1"),
                     "m3": ("browser", "p1"), "m4": ("browser", "p3"),
                     server_id: ("segment-client", "p1")}


def test_lints_route(collector: Collector) -> None:
    visit(collector)
    post(collector, [{"type": "track", "event": "x", "userId": "u1", "anonymousId": "made-up",
                      "context": {"library": {"name": "analytics-python"}}}])
    [item] = get(collector, "/v1/lints")["lints"]
    assert (item["code"], item["events"], item["profiles"]) == (
        "server_anonymous_id_unknown", [5], ["p1"])
    assert get(collector, "/v1/profiles")["lints"] == {"p1": 1}


def test_duplicates_are_left_out_and_clear_forgets(collector: Collector) -> None:
    visit(collector)
    post(collector, [{"type": "track", "event": "x", "userId": "other", "messageId": "m2"}])
    assert collector.stats()["duplicates"] == 1
    assert get(collector, "/v1/profiles")["total"] == 2  # "other" came only as a duplicate
    assert requests.post(collector.url + "/v1/clear", timeout=5).status_code == 200
    assert get(collector, "/v1/profiles")["total"] == 0
    visit(collector)
    assert get(collector, "/v1/profiles")["total"] == 2


def test_a_store_file_gives_the_same_profiles_again(tmp_path: Path) -> None:
    db = str(tmp_path / "store.sqlite3")
    with Collector(write_key=KEY, db=db) as first:
        visit(first)
        before = get(first, "/v1/profiles")
    with Collector(write_key=KEY, db=db) as second:
        assert get(second, "/v1/profiles") == before


# ---------- analytics.js: settings and the build ----------


def test_settings_point_back_at_the_collector(collector: Collector) -> None:
    resp = requests.get(f"{collector.url}/v1/projects/{KEY}/settings", timeout=5)
    assert resp.status_code == 200
    segment = resp.json()["integrations"]["Segment.io"]
    host = collector.url.removeprefix("http://")
    assert (segment["apiKey"], segment["apiHost"], segment["protocol"]) == (
        KEY, f"{host}/v1", "http")
    assert "Access-Control-Allow-Origin" not in resp.headers
    wrong = requests.get(f"{collector.url}/v1/projects/other/settings", timeout=5)
    assert wrong.status_code == 404 and wrong.json() == {"error": "unknown write key"}
    get(collector, f"/v1/projects/{KEY}/other", 404)
    allowed = requests.get(f"{collector.url}/v1/projects/{KEY}/settings",
                           headers={"Origin": ALLOWED}, timeout=5)
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_the_build_and_its_chunks(collector: Collector, analytics_next: Path) -> None:
    umd = analytics_next / "@segment" / "analytics-next" / "dist" / "umd"
    resp = requests.get(f"{collector.url}/analytics.js/v2/{KEY}/analytics.min.js", timeout=5)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/javascript")
    assert resp.content == (umd / "standalone.js").read_bytes()
    chunk = next(umd.glob("ajs-destination.bundle.*.js"))
    resp = requests.get(f"{collector.url}/analytics-next/bundles/{chunk.name}", timeout=5)
    assert resp.content == chunk.read_bytes()
    get(collector, "/analytics-next/bundles/nothing.js", 404)


def test_no_build_says_how_to_serve_one(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Collector() as bare:
        error = get(bare, "/analytics.js/v1/k/analytics.min.js", 404)["error"]
        assert "--analytics-js-dir" in error
    with pytest.raises(ValueError, match="holds no @segment/analytics-next build"):
        Collector(analytics_js_dir=tmp_path)
    with pytest.raises(ValueError, match="allowed origin is scheme://host"):
        Collector(allowed_origins=["localhost:3000"])


def test_cli_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collector", "--port", "0", "--db", ":memory:",
                 "--analytics-js-dir", str(tmp_path)]) == 2
    assert "holds no @segment/analytics-next build" in capsys.readouterr().err
    assert main(["collector", "--port", "0", "--db", ":memory:",
                 "--allow-origin", "ftp://x"]) == 2
    assert "allowed origin is scheme://host" in capsys.readouterr().err


# ---------- CORS and origins ----------


def test_preflight(collector: Collector) -> None:
    ask = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "Authorization, Content-Type, X-Retry-Count"}
    for path in ("/v1/t", "/v1/p", "/v1/i", "/v1/g", "/v1/a", "/v1/s", "/v1/b", "/v1/batch"):
        resp = requests.options(collector.url + path, headers=ask, timeout=5)
        assert resp.status_code == 204, path
        assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
        allowed = resp.headers["Access-Control-Allow-Headers"].lower()
        assert {"authorization", "content-type", "x-retry-count"} <= set(allowed.split(", "))
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    other = requests.options(collector.url + "/v1/t", timeout=5,
                             headers={**ask, "Origin": "http://127.0.0.1:4000"})
    assert other.status_code == 403 and "Access-Control-Allow-Origin" not in other.headers
    assert collector.rejections()[0]["status"] == 403


def browser_post(collector: Collector, path: str, body: dict[str, Any],
                 origin: str | None) -> requests.Response:
    headers = {"Content-Type": "text/plain", "Authorization": basic()}
    if origin:
        headers["Origin"] = origin
    return requests.post(collector.url + path, data=json.dumps(body), headers=headers,
                         timeout=5)


def test_text_plain_calls_from_an_allowed_origin(collector: Collector) -> None:
    resp = browser_post(collector, "/v1/t", {"event": "Clicked", "anonymousId": "a1",
                                             "writeKey": KEY}, ALLOWED)
    assert resp.status_code == 200 and resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    resp = browser_post(collector, "/v1/b", {"batch": [
        {"type": "page", "anonymousId": "a1"}, {"type": "identify", "userId": "u1",
                                                 "anonymousId": "a1"}]}, ALLOWED)
    assert resp.status_code == 200
    assert [(m["type"], m.get("event")) for m in collector.messages()] == [
        ("track", "Clicked"), ("page", None), ("identify", None)]


def test_other_origins_cannot_send(collector: Collector) -> None:
    evil = "http://127.0.0.1:4000"
    resp = browser_post(collector, "/v1/t", {"event": "x", "anonymousId": "a"}, evil)
    assert resp.status_code == 403 and "Access-Control-Allow-Origin" not in resp.headers
    assert "may not send events" in resp.json()["message"]
    assert browser_post(collector, "/v1/t", {"event": "x", "anonymousId": "a"},
                        "null").status_code == 403
    assert collector.stats()["total"] == 0
    assert [r["path"] for r in collector.rejections()] == ["/v1/t", "/v1/t"]
    # No Origin (a server library) and the collector's own page are not cross-origin.
    assert browser_post(collector, "/v1/t", {"event": "x", "anonymousId": "a"},
                        None).status_code == 200
    assert browser_post(collector, "/v1/t", {"event": "x", "anonymousId": "a"},
                        collector.url).status_code == 200
    assert collector.stats()["total"] == 2
