"""Our `Client` against the real collector (in this process and as the CLI command) with
a fixed sequence of seeded faults: drops, 500/503, 429 with a small Retry-After, answers
lost after the batch was stored, and batches that exhaust their retries.

One batch is in flight at a time and its rules (each `count=1`) are set just before it
is sent, so the collector applies them to that batch's attempts in order (then answers
normally) and every count below is exact.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from segment_client import Client, DeliveryError
from tests._support.clock import FakeClock
from tests.interop.conftest import Target, fault

BATCH = 10
# Per batch: the faults its attempts meet, in order (an OK attempt ends the batch unless
# the budget of max_retries=2 runs out first).
PLAN: list[tuple[str, list[dict[str, Any]]]] = [
    ("500 then ok", [fault(status=500, count=1)]),
    ("503, 429 Retry-After, ok", [fault(status=503, count=1),
                                  fault(status=429, retry_after=0.2, count=1)]),
    ("drop then ok", [fault(drop=True, count=1)]),
    ("stored, dropped, ok", [fault(drop=True, store=True, count=1)]),
    ("stored, 500, ok", [fault(status=500, store=True, count=1)]),
    ("500 x3: failed", [fault(status=500, count=1)] * 3),
    ("stored+500 x3: failed", [fault(status=500, store=True, count=1)] * 3),
    ("ok", []),
]


class Reports:
    """on_error: every reported messageId, in order. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: list[str] = []
        self.errors: list[DeliveryError] = []

    def __call__(self, error: DeliveryError, messages: list[dict[str, Any]]) -> None:
        with self.lock:
            self.errors.append(error)
            self.ids.extend(m["messageId"] for m in messages)


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_delivered_plus_reported_is_accepted_and_duplicates_only_where_answers_were_lost(
    target: Target, gzip: bool
) -> None:
    rules = [rule for _, faults in PLAN for rule in faults]
    reports = Reports()
    client = Client("interop", host=target.url, on_error=reports, max_retries=2, gzip=gzip,
                    flush_at=100, flush_interval=60, retry_base_delay=0.01)
    clock = FakeClock().install(client)
    batches: list[list[str]] = []
    for index, (_, faults) in enumerate(PLAN):
        target.set_faults(*faults)
        batches.append([client.track(f"user-{index}", "Item Viewed", {"i": i})
                        for i in range(BATCH)])
        client.flush(30)  # one batch, its retries done before the next
    assert client.close_and_flush(30) is True

    sent = [message_id for batch in batches for message_id in batch]
    failed = batches[5] + batches[6]
    stats = client.stats()
    assert (stats.queued, stats.delivered, stats.failed) == (80, 60, 20)
    assert stats.delivered + stats.failed == len(sent)
    # batches_sent counts delivered batches; retried counts message-retries (10 batch
    # retries of 10 messages: 1 + 2 + 1 + 1 + 1 + 2 + 2).
    assert (stats.batches_sent, stats.retried, stats.dropped) == (6, 100, {})
    assert reports.ids == failed
    assert [e.status for e in reports.errors] == [500, 500]  # type: ignore[attr-defined]
    assert 1.0 in clock.waits  # the 429's 0.2 s Retry-After, clamped to the 1 s floor

    records = target.events()
    stored = [r["message"]["messageId"] for r in records]
    # Every delivered message once, plus exactly the copies stored before a lost answer:
    # batch 4 (drop) and 5 (500) once more each; batch 7 three times (then reported).
    expected = (batches[0] + batches[1] + batches[2] + batches[3] * 2 + batches[4] * 2
                + batches[6] * 3 + batches[7])
    assert stored == expected
    assert set(stored) - set(failed) == set(sent) - set(failed)
    firsts: set[str] = set()
    for record in records:
        message_id = record["message"]["messageId"]
        assert record["duplicate"] is (message_id in firsts)
        firsts.add(message_id)
    server = target.stats()
    assert (server["total"], server["unique"], server["duplicates"]) == (110, 70, 40)
    assert server["fault_stored_messages"] == 50
    assert server["faults_injected"] == len(rules) == 12
    assert server["requests"] == 2 + 3 + 2 + 2 + 2 + 3 + 3 + 1
    # Each injected fault is recorded as a rejection; nothing else was refused.
    reasons = [r["reason"] for r in target.rejections()]
    assert server["rejected_requests"] == len(reasons) == 12
    assert all(reason.startswith("injected fault: ") for reason in reasons)
    assert sum("after storing 10 message(s)" in reason for reason in reasons) == 5
