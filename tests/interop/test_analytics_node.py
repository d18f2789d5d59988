"""The official `@segment/analytics-node` against the local collector.

tests/_support/analytics_node.js makes the calls and reports every request it made and
every answer it got; the collector's side is read back from its store (and, in this
process, from a spy on its dispatcher that sees the headers on the wire).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from segment_client.collector import Collector, Fault
from tests._support import analytics_js
from tests.interop.conftest import Target

SCRIPT = Path(__file__).resolve().parents[1] / "_support" / "analytics_node.js"
KEY = "interop-node-key"  # what the script configures
# Fast retries: analytics-node's counted backoff is 1-2 s, then 2-4 s.
SETTINGS = {"maxRetries": 2, "flushInterval": 60_000, "httpRequestTimeout": 5_000}


@pytest.fixture(name="node_modules", scope="module")
def _node_modules() -> Path:
    if shutil.which("node") is None:
        # Fails rather than skips: CI installs Node (.ci/run), so a missing one is a broken
        # setup, not a reason to test less.
        pytest.fail("node is not installed (apt-get install nodejs npm; .ci/run does this)")
    return analytics_js.install()


def six_calls() -> list[list[Any]]:
    return [
        ["identify", {"userId": "user-1", "traits": {"email": "a@example.com", "n": 3},
                      "messageId": "node-identify", "context": {"ip": "10.0.0.1"}}],
        ["track", {"userId": "user-1", "event": "Order Completed",
                   "properties": {"revenue": 12.5, "items": [{"sku": "é"}]},
                   "messageId": "node-track", "integrations": {"All": False}}],
        ["group", {"userId": "user-1", "groupId": "group-9", "traits": {"name": "Acme"},
                   "messageId": "node-group"}],
        ["page", {"userId": "user-1", "category": "Docs", "name": "Install",
                  "properties": {"url": "http://localhost/install"}, "messageId": "node-page"}],
        ["screen", {"anonymousId": "anon-1", "name": "Profile", "properties": {"dark": True},
                    "messageId": "node-screen"}],
        ["alias", {"userId": "user-1", "previousId": "anon-1", "messageId": "node-alias"}],
    ]


RunNode = Callable[..., dict[str, Any]]


@pytest.fixture(name="run_node")
def _run_node(node_modules: Path) -> RunNode:
    def run(host: str, calls: list[list[Any]] | None = None, **config: Any) -> dict[str, Any]:
        config = {"host": host, "calls": six_calls() if calls is None else calls,
                  "settings": {**SETTINGS, **config.pop("settings", {})}, **config}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NODE_PATH": str(node_modules)}
        done = subprocess.run(["node", str(SCRIPT), json.dumps(config)], capture_output=True,
                              text=True, env=env, timeout=90, check=False)
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        assert report["closed"] == "closed"
        return report
    return run


@pytest.fixture(name="wire")
def _wire() -> Iterator[tuple[Collector, list[dict[str, Any]]]]:
    """An in-process collector and the requests its dispatcher saw (method, target,
    headers), recorded before they are handled."""
    seen: list[dict[str, Any]] = []
    with Collector(write_key=KEY) as collector:
        dispatch = collector.routes.dispatch

        def spy(request: Any) -> Any:
            seen.append({"method": request.method, "target": request.target,
                         "headers": dict(request.headers)})
            return dispatch(request)

        collector.routes.dispatch = spy  # type: ignore[method-assign]
        yield collector, seen


def test_six_calls_arrive_with_analytics_node_fields(target: Target, run_node: RunNode) -> None:
    report = run_node(target.url)
    assert report["results"] == [None] * 6 and report["errors"] == []
    # Everything queued goes out at closeAndFlush in one batch (flushAt is 15).
    assert report["responses"] == [200]
    (request,) = report["requests"]
    assert request["messageIds"] == [f"node-{k}" for k in
                                     ("identify", "track", "group", "page", "screen", "alias")]
    records = target.events()
    assert [r["message"]["messageId"] for r in records] == request["messageIds"]
    for record, sent in zip(records, request["batch"], strict=True):
        message = record["message"]
        assert message == sent  # stored as analytics-node sent it, every field
        assert record["duplicate"] is False and record["violations"] == []
        assert message["context"]["library"]["name"] == "@segment/analytics-node"
        assert message["context"]["library"]["version"]
        assert message["_metadata"]["jsRuntime"] == "node"
        assert message["timestamp"].endswith("Z")
        assert "writeKey" not in message
    by_type = {r["message"]["type"]: r["message"] for r in records}
    assert by_type["identify"]["traits"] == {"email": "a@example.com", "n": 3}
    assert by_type["identify"]["context"]["ip"] == "10.0.0.1"
    assert by_type["track"]["event"] == "Order Completed"
    assert by_type["track"]["properties"] == {"revenue": 12.5, "items": [{"sku": "é"}]}
    assert by_type["track"]["integrations"] == {"All": False}
    assert (by_type["group"]["groupId"], by_type["group"]["traits"]) == ("group-9",
                                                                         {"name": "Acme"})
    assert (by_type["page"]["category"], by_type["page"]["name"]) == ("Docs", "Install")
    # analytics-node copies page's category into its properties.
    assert by_type["page"]["properties"] == {"url": "http://localhost/install",
                                             "category": "Docs"}
    assert by_type["screen"]["anonymousId"] == "anon-1"
    assert (by_type["screen"]["name"], by_type["screen"]["properties"]) == ("Profile",
                                                                            {"dark": True})
    assert (by_type["alias"]["previousId"], by_type["alias"]["userId"]) == ("anon-1", "user-1")
    stats = target.stats()
    assert (stats["total"], stats["unique"], stats["duplicates"]) == (6, 6, 0)
    assert (stats["batches"], stats["requests"], stats["rejected_requests"]) == (1, 1, 0)
    assert target.rejections() == []


def test_batches_of_flush_at_and_the_rest_at_close_and_flush(
    target: Target, run_node: RunNode
) -> None:
    calls = [["track", {"userId": f"u{i}", "event": "E", "messageId": f"m{i}"}]
             for i in range(7)]
    report = run_node(target.url, calls, settings={"flushAt": 3})
    assert [r["messageIds"] for r in report["requests"]] == [
        ["m0", "m1", "m2"], ["m3", "m4", "m5"], ["m6"]]
    assert report["responses"] == [200, 200, 200]
    stats = target.stats()
    assert (stats["total"], stats["unique"], stats["batches"]) == (7, 7, 3)


@pytest.mark.parametrize("host", ["http://127.0.0.1:{port}", "http://localhost:{port}/"])
def test_its_headers_path_and_host_option_pass_the_hardened_checks(
    wire: tuple[Collector, list[dict[str, Any]]], run_node: RunNode, host: str
) -> None:
    collector, seen = wire
    report = run_node(host.format(port=collector.port))
    assert report["responses"] == [200]
    (request,) = seen
    headers = request["headers"]
    assert (request["method"], request["target"]) == ("POST", "/v1/batch")
    name = host.split("//")[1].split(":")[0]
    assert headers["host"] == f"{name}:{collector.port}"
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert headers["user-agent"].startswith("analytics-node")
    # Node's fetch marks its requests like a browser's, without Origin or Sec-Fetch-Site:
    # the collector must not take that for a cross-site page.
    assert headers["sec-fetch-mode"] == "cors"
    assert "origin" not in headers and "sec-fetch-site" not in headers
    assert "content-encoding" not in headers and "x-retry-count" not in headers
    assert collector.stats()["total"] == 6 and collector.rejections() == []


@pytest.mark.parametrize(("path", "status", "stored"), [
    ("/v1/import", 200, 6), ("/v1/batch/", 200, 6), ("/v2/nowhere", 404, 0)])
def test_its_path_option(
    wire: tuple[Collector, list[dict[str, Any]]], run_node: RunNode, path: str, status: int,
    stored: int,
) -> None:
    collector, seen = wire
    report = run_node(collector.url, path=path)
    # analytics-node strips a trailing slash; a 404 is not retried.
    assert [r["target"] for r in seen] == [path.rstrip("/")]
    assert report["responses"] == [status]
    assert report["results"] == [None if stored else f"Error: [{status}] Not Found"] * 6
    assert collector.stats()["total"] == stored


def test_a_wrong_write_key_is_a_401_sent_once(run_node: RunNode) -> None:
    with Collector(write_key="another-key") as collector:
        report = run_node(collector.url)
        assert report["responses"] == [401]
        assert len(report["requests"]) == 1
        assert all(r is not None and "401" in r for r in report["results"])
        assert collector.stats()["total"] == 0
        (rejection,) = collector.rejections()
        assert rejection["status"] == 401


@pytest.mark.parametrize(("faults", "responses", "stored"), [
    # 400: never retried; every call's callback gets the failure.
    ([Fault(status=400, count=1)], [400], 0),
    # 500 twice then OK: maxRetries=2 covers it, stored once.
    ([Fault(status=500, count=2)], [500, 500, 200], 6),
    # 500 every time: 1 + maxRetries attempts, then failed.
    ([Fault(status=500)], [500, 500, 500], 0),
    # 429 with Retry-After: waited out, not counted against maxRetries.
    ([Fault(status=429, count=3, retry_after=1)], [429, 429, 429, 200], 6),
    # 429 without Retry-After: a counted retry.
    ([Fault(status=429, count=1)], [429, 200], 6),
    # A dropped connection: a network error, retried.
    ([Fault(drop=True, count=1)], [200], 6),
], ids=["400", "500x2", "500-always", "429-retry-after", "429-bare", "drop"])
def test_its_retries_on_collector_faults_with_exact_counts(
    wire: tuple[Collector, list[dict[str, Any]]], run_node: RunNode,
    faults: list[Fault], responses: list[int], stored: int
) -> None:
    collector, seen = wire
    collector.set_faults(*faults)
    report = run_node(collector.url)
    assert report["responses"] == responses
    attempts = len(seen)
    assert attempts == len(report["requests"]) == (len(responses) + (1 if faults[0].drop
                                                                     else 0))
    assert [r["headers"].get("x-retry-count") for r in seen] == [None] + [
        str(n) for n in range(1, attempts)]
    assert all(r["messageIds"] == report["requests"][0]["messageIds"]
               for r in report["requests"])
    delivered = sum(r is None for r in report["results"])
    assert delivered == stored
    stats = collector.stats()
    assert (stats["total"], stats["unique"], stats["duplicates"]) == (stored, stored, 0)
    assert stats["faults_injected"] == attempts - (1 if stored else 0)


def test_an_answer_lost_after_storing_is_resent_and_flagged_duplicate(
    wire: tuple[Collector, list[dict[str, Any]]], run_node: RunNode
) -> None:
    collector, seen = wire
    collector.set_faults(Fault(status=503, count=1, store=True))
    report = run_node(collector.url)
    assert report["responses"] == [503, 200] and len(seen) == 2
    assert report["results"] == [None] * 6
    records = list(reversed(collector.events()))
    assert [r["duplicate"] for r in records] == [False] * 6 + [True] * 6
    assert [r["message"]["messageId"] for r in records[6:]] == [
        r["message"]["messageId"] for r in records[:6]]
    stats = collector.stats()
    assert (stats["total"], stats["unique"], stats["duplicates"]) == (12, 6, 6)
