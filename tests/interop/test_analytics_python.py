"""The official `segment-analytics-python` library against the local collector.

What it sends is captured on its way out (its `post` wrapped, the request still made) and
compared with what the collector stored: every message, every field, nothing rejected;
with gzip on and off; in this process and as the `segment-client collector` command.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import segment.analytics as segment_analytics
from segment.analytics import consumer as sa_consumer
from segment.analytics.client import Client as AnalyticsClient

from tests.interop.conftest import Target, fault

WHEN = datetime.datetime(2026, 11, 30, 12, 0, 0, 123000, tzinfo=datetime.timezone.utc)


@pytest.fixture(name="sent")
def _sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every batch analytics-python posts (one list entry per attempt), as it sent it."""
    attempts: list[dict[str, Any]] = []
    original = sa_consumer.post

    def recording_post(*args: Any, **kwargs: Any) -> Any:
        attempts.append({"batch": [dict(m) for m in kwargs["batch"]],
                         "gzip": kwargs.get("gzip"), "retry": kwargs.get("retry_count")})
        return original(*args, **kwargs)

    monkeypatch.setattr(sa_consumer, "post", recording_post)
    yield attempts


def client_for(target: Target, *, gzip: bool, **options: Any) -> AnalyticsClient:
    errors: list[Any] = []
    client = AnalyticsClient("interop-key", host=target.url, gzip=gzip, max_retries=3,
                             upload_size=100, on_error=lambda e, b: errors.append(e),
                             **options)
    client.errors = errors  # type: ignore[attr-defined]
    return client


def six_calls(client: AnalyticsClient, prefix: str) -> list[str]:
    """One call of each kind with every field set; returns the messageIds in order."""
    ids = [f"{prefix}-{kind}-{uuid.uuid4()}" for kind in
           ("identify", "track", "group", "page", "screen", "alias")]
    common: dict[str, Any] = {"timestamp": WHEN, "context": {"ip": "10.0.0.1", "locale": "fr"},
                              "integrations": {"All": False, "Mixpanel": True}}
    client.identify("user-1", {"email": "a@example.com", "plan": "pro", "n": 3},
                    anonymous_id="anon-1", message_id=ids[0], **common)
    client.track("user-1", "Order Completed", {"revenue": 12.5, "items": [{"sku": "é"}]},
                 message_id=ids[1], **common)
    client.group("user-1", "group-9", {"name": "Acme", "employees": 40},
                 message_id=ids[2], **common)
    client.page("user-1", "Docs", "Install", {"url": "http://localhost/install"},
                message_id=ids[3], **common)
    client.screen("user-1", "Settings", "Profile", {"dark": True},
                  message_id=ids[4], **common)
    client.alias("anon-1", "user-1", message_id=ids[5], **common)
    return ids


def finish(client: AnalyticsClient) -> None:
    client.flush()
    client.join()  # its consumer threads end here


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_six_calls_arrive_with_every_field(
    target: Target, sent: list[dict[str, Any]], gzip: bool
) -> None:
    client = client_for(target, gzip=gzip)
    ids = six_calls(client, "py")
    finish(client)
    assert client.errors == []  # type: ignore[attr-defined]
    assert len(sent) == 1 and sent[0]["gzip"] is gzip and sent[0]["retry"] == 0
    outgoing = {m["messageId"]: m for m in sent[0]["batch"]}
    assert list(outgoing) == ids

    records = target.events()
    assert [r["message"]["messageId"] for r in records] == ids
    for record in records:
        message = record["message"]
        # Stored exactly as analytics-python sent it: no field lost, added or changed.
        assert message == outgoing[message["messageId"]]
        assert record["duplicate"] is False and record["violations"] == []
        assert message["context"]["library"] == {"name": "analytics-python",
                                                 "version": segment_analytics.VERSION}
        assert message["context"]["ip"] == "10.0.0.1"
        assert message["integrations"] == {"All": False, "Mixpanel": True}
        assert message["timestamp"].startswith("2026-11-30T12:00:00.123")
    by_type = {r["message"]["type"]: r["message"] for r in records}
    assert by_type["identify"]["traits"] == {"email": "a@example.com", "plan": "pro", "n": 3}
    assert by_type["identify"]["anonymousId"] == "anon-1"
    assert by_type["track"]["event"] == "Order Completed"
    assert by_type["track"]["properties"] == {"revenue": 12.5, "items": [{"sku": "é"}]}
    assert by_type["group"]["groupId"] == "group-9"
    assert by_type["group"]["traits"] == {"name": "Acme", "employees": 40}
    assert (by_type["page"]["category"], by_type["page"]["name"]) == ("Docs", "Install")
    assert by_type["page"]["properties"] == {"url": "http://localhost/install"}
    assert (by_type["screen"]["category"], by_type["screen"]["name"]) == ("Settings", "Profile")
    assert (by_type["alias"]["previousId"], by_type["alias"]["userId"]) == ("anon-1", "user-1")

    stats = target.stats()
    assert (stats["total"], stats["unique"], stats["duplicates"]) == (6, 6, 0)
    assert stats["by_type"] == dict.fromkeys(
        ["alias", "group", "identify", "page", "screen", "track"], 1)
    assert (stats["batches"], stats["requests"], stats["rejected_requests"]) == (1, 1, 0)
    assert target.rejections() == []


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_a_500_then_ok_is_retried_and_stored_once(
    target: Target, sent: list[dict[str, Any]], gzip: bool
) -> None:
    target.set_faults(fault(status=500, count=1))
    client = client_for(target, gzip=gzip)
    ids = six_calls(client, "retry")
    finish(client)
    assert client.errors == []  # type: ignore[attr-defined]
    assert [a["retry"] for a in sent] == [0, 1]
    assert sent[0]["batch"] == sent[1]["batch"]
    assert [r["message"]["messageId"] for r in target.events()] == ids
    stats = target.stats()
    assert (stats["total"], stats["unique"], stats["duplicates"]) == (6, 6, 0)
    assert (stats["requests"], stats["faults_injected"], stats["batches"]) == (2, 1, 1)


def test_an_answer_lost_after_storing_makes_flagged_duplicates_only(
    target: Target, sent: list[dict[str, Any]]
) -> None:
    # Stored, then answered 500: analytics-python resends the same messageIds; the
    # collector keeps both copies and flags the second.
    target.set_faults(fault(status=500, count=1, store=True), fault(drop=True, count=1,
                                                                    store=True))
    client = client_for(target, gzip=True)
    ids = six_calls(client, "lost")
    finish(client)
    assert client.errors == []  # type: ignore[attr-defined]
    assert [a["retry"] for a in sent] == [0, 1, 2]
    records = target.events()
    assert [r["message"]["messageId"] for r in records] == ids * 3
    assert [r["duplicate"] for r in records] == [False] * 6 + [True] * 12
    stats = target.stats()
    assert (stats["total"], stats["unique"], stats["duplicates"]) == (18, 6, 12)
    assert (stats["faults_injected"], stats["fault_stored_messages"]) == (2, 12)


def test_a_400_is_not_retried_and_reported(
    target: Target, sent: list[dict[str, Any]]
) -> None:
    target.set_faults(fault(status=400, count=1))
    client = client_for(target, gzip=False)
    six_calls(client, "bad")
    finish(client)
    assert len(client.errors) == 1  # type: ignore[attr-defined]
    assert len(sent) == 1
    assert target.stats()["total"] == 0
