"""The local collector over real HTTP on 127.0.0.1: ingest rules, read API, faults."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from segment_client.collector import (
    MAX_MESSAGE_BYTES,
    Collector,
    Fault,
    FaultPlan,
    parse_fault,
    validate_message,
)


@pytest.fixture(name="collector")
def _collector() -> Iterator[Collector]:
    with Collector() as collector:
        yield collector


@pytest.fixture(name="http")
def _http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def track(user: str = "user-1", event: str = "Signed Up", **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event,
            "messageId": str(uuid.uuid4()), "timestamp": "2024-05-01T12:00:00.000Z", **extra}


def post(http: requests.Session, collector: Collector, body: Any, path: str = "/v1/batch",
         **kwargs: Any) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.post(collector.url + path, data=data, timeout=5, **kwargs)


def test_batch_is_stored_with_received_at_batch_id_and_ids(
    collector: Collector, http: requests.Session
) -> None:
    messages = [track(), track("user-2", "Order Completed"), {
        "type": "identify", "anonymousId": "a-1", "traits": {"plan": "pro"},
        "messageId": "m-identify"}]
    response = post(http, collector, {"batch": messages, "sentAt": "2024-05-01T12:00:01Z"})
    assert response.status_code == 200
    assert response.json() == {"success": True}
    events = collector.events()
    assert [e["message"] for e in reversed(events)] == messages
    assert [e["id"] for e in events] == [3, 2, 1]  # newest first
    assert len({e["batchId"] for e in events}) == 1
    assert all(e["receivedAt"].endswith("Z") and not e["duplicate"] for e in events)
    stats = collector.stats()
    assert stats["by_type"] == {"identify": 1, "track": 2}
    assert stats["by_event"] == {"Order Completed": 1, "Signed Up": 1}
    assert (stats["total"], stats["batches"], stats["duplicates"]) == (3, 1, 0)


def test_gzip_body_and_single_message_routes(collector: Collector, http: requests.Session) -> None:
    body = gzip.compress(json.dumps({"batch": [track()]}).encode())
    assert post(http, collector, body, headers={"Content-Encoding": "gzip"}).status_code == 200
    single = {"userId": "u", "groupId": "g-1", "traits": {"name": "Acme"}}
    assert post(http, collector, single, "/v1/group").status_code == 200
    assert post(http, collector, {"previousId": "a", "userId": "b"}, "/v1/alias").ok
    types = [m["type"] for m in collector.messages()]
    assert types == ["track", "group", "alias"]


def test_duplicates_are_counted_not_hidden(collector: Collector, http: requests.Session) -> None:
    first = track()
    post(http, collector, {"batch": [first, track()]})
    post(http, collector, {"batch": [first]})
    events = collector.events()
    assert [e["duplicate"] for e in events] == [True, False, False]
    stats = collector.stats()
    assert (stats["total"], stats["unique"], stats["duplicates"]) == (3, 2, 1)


def test_malformed_json_is_400_with_the_reason(
    collector: Collector, http: requests.Session
) -> None:
    response = post(http, collector, b'{"batch": [')
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["message"]
    assert post(http, collector, b"[1, 2]").status_code == 400
    assert post(http, collector, {"sentAt": "x"}).status_code == 400  # no batch array
    rejections = collector.rejections()
    assert [r["status"] for r in rejections] == [400, 400, 400]
    assert collector.stats()["rejected_requests"] == 3
    assert collector.stats()["total"] == 0


def test_message_over_32kb_rejects_the_request(
    collector: Collector, http: requests.Session
) -> None:
    big = track(properties={"blob": "a" * MAX_MESSAGE_BYTES})
    response = post(http, collector, {"batch": [track(), big]})
    assert response.status_code == 400
    assert "Exceed payload limit" in response.json()["message"]
    assert "message 1" in response.json()["message"]
    assert collector.stats()["total"] == 0
    # Measured in UTF-8 bytes: 12,000 three-byte characters are over the limit.
    wide = track(properties={"text": "€" * 12_000})
    assert post(http, collector, {"batch": [wide]}).status_code == 400
    assert post(http, collector, big, "/v1/track").status_code == 400


def test_request_over_500kb_is_400_even_gzipped(
    collector: Collector, http: requests.Session
) -> None:
    batch = [track(properties={"blob": "x" * 20_000}) for _ in range(30)]  # ~600 KB
    response = post(http, collector, {"batch": batch})
    assert response.status_code == 400
    assert "Exceed payload limit" in response.text
    body = gzip.compress(json.dumps({"batch": batch}).encode())
    assert len(body) < 100_000
    response = post(http, collector, body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert collector.stats()["total"] == 0
    assert post(http, collector, {"batch": [track()]}).status_code == 200  # connection fine


def test_write_key_by_basic_auth_or_body() -> None:
    with Collector(write_key="right") as collector, requests.Session() as http:
        def auth(key: str) -> dict[str, str]:
            token = base64.b64encode(f"{key}:".encode()).decode()
            return {"Authorization": f"Basic {token}"}

        assert post(http, collector, {"batch": [track()]}, headers=auth("right")).ok
        assert post(http, collector, {"batch": [track()], "writeKey": "right"}).ok
        wrong = post(http, collector, {"batch": [track()]}, headers=auth("wrong"))
        assert wrong.status_code == 401
        assert "invalid write key" in wrong.text
        assert "right" not in wrong.text
        missing = post(http, collector, {"batch": [track()]})
        assert missing.status_code == 401
        assert post(http, collector, {"batch": [track()], "writeKey": "nope"}).status_code == 401
        assert collector.stats()["total"] == 2
        assert collector.stats()["rejected_requests"] == 3


def test_invalid_messages_are_dropped_and_reported(
    collector: Collector, http: requests.Session
) -> None:
    bad = {"type": "track", "userId": "u", "messageId": "m-bad"}  # no event
    response = post(http, collector, {"batch": [track(), bad, {"type": "nope"}]})
    assert response.status_code == 200  # like the real API
    assert collector.stats()["total"] == 1
    reasons = [r["reason"] for r in reversed(collector.rejections())]
    assert len(reasons) == 2
    assert "message 1 (track, messageId=m-bad)" in reasons[0]
    assert "event" in reasons[0]
    assert "type must be one of" in reasons[1]


def test_strict_mode_answers_400() -> None:
    with Collector(strict=True) as collector, requests.Session() as http:
        response = post(http, collector, {"batch": [track(), {"type": "track", "userId": "u"}]})
        assert response.status_code == 400
        assert "track needs event" in response.json()["message"]
        assert collector.stats()["total"] == 0


def test_validator_hook_fills_violations() -> None:
    def plan(message: dict[str, Any]) -> list[str]:
        return ["event not in the plan"] if message.get("event") == "Unknown" else []

    with Collector(validator=plan) as collector, requests.Session() as http:
        post(http, collector, {"batch": [track(event="Unknown"), track()]})
        events = collector.events()
        assert [e["violations"] for e in reversed(events)] == [["event not in the plan"], []]
        assert collector.stats()["with_violations"] == 1


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ({"type": "track", "event": "E"}, "userId or anonymousId"),
        ({"type": "alias", "userId": "u"}, "previousId"),
        ({"type": "group", "userId": "u"}, "groupId"),
        ({"type": "page", "userId": "u", "properties": []}, "properties must be an object"),
        ({"type": "identify", "userId": "u", "timestamp": "yesterday"}, "ISO 8601"),
        ({"type": "track", "userId": "u", "event": "E", "messageId": 5}, "messageId"),
        ("text", "JSON object"),
    ],
)
def test_validation_reasons(message: Any, fragment: str) -> None:
    assert any(fragment in reason for reason in validate_message(message))


def test_validation_accepts_numeric_ids_and_offsets() -> None:
    message = {"type": "identify", "userId": 42, "timestamp": "2024-05-01T12:00:00+02:00"}
    assert validate_message(message) == []


def test_read_api_filters(collector: Collector, http: requests.Session) -> None:
    post(http, collector, {"batch": [
        track("alice", "Signed Up"), track("bob", "Order Completed", properties={"sku": "zebra"}),
        {"type": "page", "anonymousId": "alice", "name": "Home"},
    ]})

    def get(query: str) -> dict[str, Any]:
        response = http.get(f"{collector.url}/v1/events?{query}", timeout=5)
        assert response.status_code == 200
        data: dict[str, Any] = response.json()
        return data

    assert get("")["last_id"] == 3
    assert [e["message"]["type"] for e in get("user_id=alice")["events"]] == ["page", "track"]
    assert [e["id"] for e in get("type=track")["events"]] == [2, 1]
    assert [e["id"] for e in get("event=Order%20Completed")["events"]] == [2]
    assert [e["id"] for e in get("q=ZEBRA")["events"]] == [2]
    assert [e["id"] for e in get("after=1")["events"]] == [3, 2]
    assert [e["id"] for e in get("limit=1")["events"]] == [3]
    assert http.get(f"{collector.url}/v1/events?limit=x", timeout=5).status_code == 400
    stats = http.get(f"{collector.url}/v1/stats", timeout=5).json()
    assert stats["by_type"] == {"page": 1, "track": 2}
    assert stats["messages_last_minute"] == 3
    post(http, collector, b"nope")
    rejections = http.get(f"{collector.url}/v1/rejections?after=0", timeout=5).json()
    assert [r["path"] for r in rejections["rejections"]] == ["/v1/batch"]
    assert set(rejections["rejections"][0]) == {"id", "receivedAt", "path", "status", "reason"}


def test_clear_empties_everything_and_ids_keep_growing(
    collector: Collector, http: requests.Session
) -> None:
    post(http, collector, {"batch": [track(), track()]})
    post(http, collector, b"bad")
    assert http.post(f"{collector.url}/v1/clear", timeout=5).json() == {"success": True}
    stats = collector.stats()
    assert (stats["total"], stats["rejected_requests"], stats["batches"]) == (0, 0, 0)
    post(http, collector, {"batch": [track()]})
    assert [e["id"] for e in collector.events()] == [3]


def test_static_files_and_index(collector: Collector, http: requests.Session) -> None:
    index = http.get(collector.url + "/", timeout=5)
    assert index.status_code == 200
    assert index.headers["Content-Type"].startswith("text/html")
    assert "<html" in index.text.lower()
    assert http.get(collector.url + "/static/index.html", timeout=5).status_code == 200
    assert http.get(collector.url + "/static/missing.js", timeout=5).status_code == 404
    assert http.get(collector.url + "/static/..%2f_server.py", timeout=5).status_code == 404
    assert http.get(collector.url + "/nope", timeout=5).status_code == 404


def test_keep_alive_serves_many_requests_on_one_connection(collector: Collector) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=5)
    body = json.dumps({"batch": [track()]}).encode()
    for _ in range(20):
        conn.request("POST", "/v1/batch", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    sock = conn.sock
    assert sock is not None  # still the same open connection
    conn.close()
    assert collector.stats()["requests"] == 20


def test_file_store_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "events.sqlite3")
    first = track()
    with Collector(db=db) as collector, requests.Session() as http:
        post(http, collector, {"batch": [first, track()]})
    with Collector(db=db) as collector, requests.Session() as http:
        post(http, collector, {"batch": [first]})
        stats = collector.stats()
        assert (stats["total"], stats["duplicates"], stats["batches"]) == (3, 1, 2)
        assert [e["id"] for e in collector.events()] == [3, 2, 1]


# -- faults --------------------------------------------------------------------------------


def test_fault_rules_by_count_then_rate_are_seeded() -> None:
    def outcomes(seed: int) -> list[int | None]:
        plan = FaultPlan([Fault(status=413, count=2), Fault(status=500, rate=0.5)], seed)
        picks = [plan.pick() for _ in range(40)]
        return [None if f is None else f.status for f in picks]

    first = outcomes(3)
    assert first == outcomes(3)
    assert first[:2] == [413, 413]
    assert 5 < first.count(500) < 35
    assert first.count(413) == 2


def test_fault_validation_and_parsing() -> None:
    assert parse_fault("status=429,rate=0.1,retry_after=1") == Fault(
        status=429, rate=0.1, retry_after=1.0
    )
    assert parse_fault("drop,store,count=2") == Fault(drop=True, store=True, count=2)
    assert parse_fault("delay=1.5").rate == 1.0
    for bad in ("rate=0.5", "status=700", "status=500,rate=2", "drop,status=500", "bogus=1",
                "status"):
        with pytest.raises(ValueError):
            parse_fault(bad)
    with pytest.raises(ValueError, match="add up"):
        FaultPlan([Fault(status=500, rate=0.7), Fault(drop=True, rate=0.5)])


def test_fault_status_with_retry_after_then_normal(
    collector: Collector, http: requests.Session
) -> None:
    collector.set_faults(Fault(status=429, count=1, retry_after=1))
    first = post(http, collector, {"batch": [track()]})
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "1"
    assert post(http, collector, {"batch": [track()]}).status_code == 200
    assert collector.stats()["total"] == 1
    assert collector.stats()["faults_injected"] == 1
    assert collector.faults()["faults"][0]["injected"] == 1


def test_fault_drop_closes_without_an_answer(collector: Collector, http: requests.Session) -> None:
    collector.set_faults(Fault(drop=True, count=1), Fault(drop=True, store=True, count=1))
    with pytest.raises(requests.ConnectionError):
        post(http, collector, {"batch": [track()]})
    assert collector.stats()["total"] == 0
    with pytest.raises(requests.ConnectionError):
        post(http, collector, {"batch": [track(), track()]})
    stats = collector.stats()
    assert (stats["total"], stats["fault_stored_messages"]) == (2, 2)
    assert post(http, collector, {"batch": [track()]}).status_code == 200


def test_faults_control_route(collector: Collector, http: requests.Session) -> None:
    spec = {"faults": [{"status": 503, "count": 1}], "seed": 4}
    answer = http.post(f"{collector.url}/v1/faults", json=spec, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["faults"][0]["status"] == 503
    assert post(http, collector, {"batch": [track()]}).status_code == 503
    assert post(http, collector, {"batch": [track()]}).status_code == 200
    bad = http.post(f"{collector.url}/v1/faults", json={"faults": [{"rate": 1}]}, timeout=5)
    assert bad.status_code == 400
    assert http.delete(f"{collector.url}/v1/faults", timeout=5).json()["faults"] == []
    # Read routes are never faulted.
    collector.set_faults(Fault(status=500))
    assert http.get(f"{collector.url}/v1/stats", timeout=5).status_code == 200


def test_discard_mode_counts_without_storing() -> None:
    with Collector(discard=True) as collector, requests.Session() as http:
        first = track()
        post(http, collector, {"batch": [first, track("u", "Other")]})
        post(http, collector, {"batch": [first]})
        stats = collector.stats()
        assert (stats["total"], stats["unique"], stats["duplicates"]) == (3, 2, 1)
        assert stats["by_event"] == {"Signed Up": 2, "Other": 1}
        assert collector.events() == []
        assert post(http, collector, b"{").status_code == 400  # the request checks remain


@pytest.fixture(name="parser", params=["orjson", "stdlib"])
def _parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    from segment_client.collector import _decode

    if request.param == "stdlib":
        monkeypatch.setattr(_decode, "loads_fast", None)
    elif _decode.loads_fast is None:
        pytest.skip("orjson is not installed")
    return str(request.param)


def test_both_parsers_store_the_same_messages_and_limits(
    parser: str, collector: Collector, http: requests.Session
) -> None:
    messages = [track(properties={"price": 1e5, "name": "caf\u00e9", "nested": [1, {"a": None}]}),
                track("user-2", context={"ip": "203.0.113.9"}), track("user-3")]
    body = json.dumps({"batch": messages, "context": {"library": {"name": "x"}}},
                      indent=2, ensure_ascii=True).encode()
    assert post(http, collector, body).status_code == 200
    stored = collector.messages()
    assert stored[0]["properties"] == messages[0]["properties"]
    assert [m["context"] for m in stored] == [
        {"library": {"name": "x"}}, {"ip": "203.0.113.9"}, {"library": {"name": "x"}}]
    # Under the limit compactly, over it as sent (whitespace counts, as on the API).
    padded = track(properties={"text": "x" * 30_000})
    text = json.dumps(padded).replace(", ", "," + " " * 3_000, 1)
    body = ('{"batch": [' + text + ', ' + json.dumps(track()) + "]}").encode()
    response = post(http, collector, body)
    assert response.status_code == 400, parser
    assert "message 0 is" in response.json()["message"]
    # NaN and integers beyond 64 bits: orjson refuses them, the collector does not.
    odd = [track(properties={"big": 2**70}), track(properties={"nan": float("nan")})]
    assert post(http, collector, json.dumps({"batch": odd}).encode()).status_code == 200
    assert collector.stats()["total"] == 5


def test_group_commit_stores_several_requests_in_one_transaction(
    collector: Collector, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    store = collector.store
    groups: list[int] = []
    real = store._commit_locked
    first_inside, go = threading.Event(), threading.Event()

    def commit(group: Any) -> Any:
        groups.append(len(group))
        if len(groups) == 1:
            first_inside.set()
            assert go.wait(10)
        return real(group)

    monkeypatch.setattr(store, "_commit_locked", commit)
    answers: list[int] = []

    def send() -> None:
        with requests.Session() as session:
            answers.append(post(session, collector, {"batch": [track()]}).status_code)

    first = threading.Thread(target=send)
    first.start()
    assert first_inside.wait(10)
    others = [threading.Thread(target=send) for _ in range(5)]
    for thread in others:
        thread.start()
    with store._queue_cv:  # the five wait in the queue while the first commits
        assert store._queue_cv.wait_for(lambda: len(store._queue) == 5, timeout=10)
    assert answers == []  # nobody is answered before their batch is committed
    go.set()
    for thread in [first, *others]:
        thread.join(10)
    assert answers == [200] * 6
    assert groups == [1, 5]
    assert collector.stats()["total"] == 6


def test_http_edge_cases_of_the_request_parser(collector: Collector) -> None:
    import socket

    def exchange(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", collector.port), timeout=5) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    body = json.dumps({"batch": [track()]}).encode()
    # HTTP/1.0 closes after the answer; a folded header line is joined to the previous.
    answer = exchange(b"POST /v1/batch HTTP/1.0\r\nX-Folded: a\r\n b\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in answer
    # Expect: 100-continue gets its interim answer, then the real one.
    answer = exchange(b"POST /v1/batch HTTP/1.1\r\nExpect: 100-continue\r\nConnection: close"
                      b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n") and b"200 OK" in answer
    flood = b"".join(b"X-%d: 1\r\n" % i for i in range(101))
    assert exchange(b"GET /v1/stats HTTP/1.1\r\n" + flood + b"\r\n").startswith(
        b"HTTP/1.1 431")
    assert exchange(b"HEAD /v1/stats HTTP/1.1\r\nConnection: close\r\n\r\n").endswith(
        b"\r\n\r\n")
    assert collector.stats()["total"] == 2


def test_a_batch_that_cannot_be_stored_is_answered_500_and_the_store_keeps_working(
    collector: Collector, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = collector.store._db
    failing = [True]

    class Locked:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def executemany(self, sql: str, rows: Any) -> Any:
            if failing[0] and "INSERT INTO events" in sql:
                raise sqlite3.OperationalError("database is locked")
            return real.executemany(sql, rows)

    monkeypatch.setattr(collector.store, "_db", Locked())
    response = post(http, collector, {"batch": [track(), track()]})
    assert response.status_code == 500  # retryable: the client sends it again
    assert "stored none of 2 message(s)" in response.json()["message"]
    (rejection,) = collector.rejections()
    assert rejection["status"] == 500
    assert "OperationalError: database is locked" in rejection["reason"]
    assert collector.stats()["total"] == 0
    assert not real.in_transaction  # rolled back, never left open
    failing[0] = False
    assert post(http, collector, {"batch": [track(), track()]}).status_code == 200
    assert collector.stats()["total"] == 2


def test_extension_points_a_route_a_view_and_a_store_listener(
    collector: Collector, http: requests.Session
) -> None:
    from segment_client.collector._http import Request, Response, json_response
    from segment_client.collector._store import StoredRow

    seen: list[list[StoredRow]] = []
    cleared: list[bool] = []
    remove = collector.add_listener(seen.append, lambda: cleared.append(True))

    def hello(request: Request) -> Response:
        return json_response(200, {"hello": request.query().get("name")})

    collector.routes.add("GET", "/v1/hello", hello)
    collector.routes.add_view("/static/other.html", "Other view")
    assert http.get(collector.url + "/v1/hello?name=x", timeout=5).json() == {"hello": "x"}
    assert http.get(collector.url + "/v1/views", timeout=5).json() == [
        {"path": "/", "title": "Live events"},
        {"path": "/static/profiles.html", "title": "Profiles"},
        {"path": "/static/other.html", "title": "Other view"},
    ]
    messages = [track(), track(messageId="same"), track(messageId="same")]
    assert post(http, collector, {"batch": messages}).status_code == 200
    collector.stats()  # a read waits for the batch answered before it
    (rows,) = seen
    assert [row.id for row in rows] == [1, 2, 3]
    assert [row.message for row in rows] == messages
    assert [row.duplicate for row in rows] == [False, False, True]
    assert len({row.batch_id for row in rows}) == 1
    assert post(http, collector, {"batch": [track()]}, "/v1/clear").ok
    assert cleared == [True]
    remove()
    assert post(http, collector, {"batch": [track()]}).status_code == 200
    collector.stats()
    assert len(seen) == 1


def test_a_failing_listener_never_breaks_ingest(
    collector: Collector, http: requests.Session
) -> None:
    def broken(rows: Any) -> None:
        raise RuntimeError("listener bug")

    collector.add_listener(broken)
    assert post(http, collector, {"batch": [track(), track()]}).status_code == 200
    assert collector.stats()["total"] == 2
    assert collector.rejections() == []


def test_an_ingest_handler_for_another_path(collector: Collector, http: requests.Session) -> None:
    routes = collector.routes
    routes.add("POST", "/v1/t", collector.ingest.handler("track"), access="ingest")
    routes.add("POST", "/v1/b", collector.ingest.handler(), access="ingest")
    assert post(http, collector, {"userId": "u", "event": "Short"}, "/v1/t").status_code == 200
    assert post(http, collector, {"batch": [track()]}, "/v1/b").status_code == 200
    assert [m["type"] for m in collector.messages()] == ["track", "track"]
    assert post(http, collector, {"userId": "u"}, "/v1/t").status_code == 200
    assert "track needs event" in collector.rejections()[0]["reason"]
    with pytest.raises(ValueError, match="kind is one of"):
        collector.ingest.handler("nope")
