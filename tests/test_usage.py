"""Usage: Segment's MTU rule, API calls and events per destination, the projection."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from segment_client import Client
from segment_client._demo import demo_stream
from segment_client.collector import Collector
from segment_client.collector._records import Record
from segment_client.collector._routing import Router, parse_destinations
from segment_client.collector._usage import MonthlyUsers, UsageCounter
from segment_client.collector._usage._command import add_parser

APR = "2026-04-15T10:00:00.000Z"
MAY = "2026-05-15T10:00:00.000Z"

MTU_CASES: list[tuple[str, list[tuple[str, Any, Any]], dict[str, tuple[int, int]]]] = [
    # (id, [(received_at, userId, anonymousId)], {month: (userIds, unlinked anonymousIds)})
    ("one-user", [(APR, "u1", None)], {"2026-04": (1, 0)}),
    ("one-anonymous", [(APR, None, "a1")], {"2026-04": (0, 1)}),
    ("many-messages-one-user", [(APR, "u1", None)] * 5, {"2026-04": (1, 0)}),
    ("anonymous-then-linked", [(APR, None, "a1"), (APR, "u1", "a1")], {"2026-04": (1, 0)}),
    ("linked-then-anonymous", [(APR, "u1", "a1"), (APR, None, "a1")], {"2026-04": (1, 0)}),
    ("two-anonymous-one-linked", [(APR, None, "a1"), (APR, None, "a2"), (APR, "u1", "a1")],
     {"2026-04": (1, 1)}),
    ("two-users-share-a-device", [(APR, "u1", "a1"), (APR, "u2", "a1")], {"2026-04": (2, 0)}),
    ("linked-next-month-counts-this-month",
     [(APR, None, "a1"), (MAY, "u1", "a1")], {"2026-04": (0, 1), "2026-05": (1, 0)}),
    ("linked-last-month-counts-again",
     [(APR, "u1", "a1"), (MAY, None, "a1")], {"2026-04": (1, 0), "2026-05": (0, 1)}),
    ("user-in-two-months-counts-in-each",
     [(APR, "u1", None), (MAY, "u1", None)], {"2026-04": (1, 0), "2026-05": (1, 0)}),
    ("month-boundary-is-utc-received-time",
     [("2026-04-30T23:59:59.999Z", "u1", None), ("2026-05-01T00:00:00.000Z", "u2", None)],
     {"2026-04": (1, 0), "2026-05": (1, 0)}),
    ("year-boundary", [("2025-12-31T23:59:59.999Z", None, "a1"),
                       ("2026-01-01T00:00:00.000Z", "u1", "a1")],
     {"2025-12": (0, 1), "2026-01": (1, 0)}),
    ("empty-ids-are-no-ids", [(APR, "", "a1"), (APR, "u1", "")], {"2026-04": (1, 1)}),
    ("a-number-counts-as-its-text", [(APR, 42, None), (APR, "42", None)], {"2026-04": (1, 0)}),
]


@pytest.mark.parametrize(("messages", "expected"), [c[1:] for c in MTU_CASES],
                         ids=[c[0] for c in MTU_CASES])
def test_mtu_rules(messages: list[tuple[str, Any, Any]],
                   expected: dict[str, tuple[int, int]]) -> None:
    users = MonthlyUsers()
    for received, user, anonymous in messages:
        users.add(received[:7], user, anonymous)
    counted = {month: users.count(month) for month in users.months()}
    assert {m: (c.user_ids, c.anonymous_ids) for m, c in counted.items()} == expected
    assert all(c.total == sum(expected[m]) for m, c in counted.items())


def test_an_identity_graph_links_more_anonymous_ids() -> None:
    users = MonthlyUsers()
    for user, anonymous in [(None, "a1"), (None, "a2"), ("u1", "a1"), (None, "a3")]:
        users.add("2026-04", user, anonymous)
    assert users.count("2026-04").total == 3
    linked = {"a2"}
    assert users.count("2026-04", linked.__contains__).total == 2

    def broken(anonymous: str) -> bool:
        raise RuntimeError("graph down")

    assert users.count("2026-04", broken).total == 3  # a broken graph links nothing


ROUTES = {"destinations": [
    {"name": "Amplitude", "filters": [{"action": "drop", "match": {"type": "page"}}]},
    {"name": "Mixpanel"},
]}


def record(i: int, at: str, **message: Any) -> Record:
    duplicate = message.pop("duplicate", False)
    return Record(i, at, {"messageId": f"m{i}", **message}, duplicate)


def test_counts_per_destination_repeats_and_messages_segment_never_gets() -> None:
    counter = UsageCounter(Router(parse_destinations(ROUTES)))
    counter.load([
        record(1, "2026-05-01T10:00:05.000Z", type="track", event="A", userId="u1"),
        record(2, "2026-05-01T10:00:30.000Z", type="page", anonymousId="a1"),
        record(3, "2026-05-01T10:02:10.000Z", type="track", event="A", userId="u1",
               duplicate=True),
        record(4, "2026-05-01T10:02:20.000Z", type="track", event="B", userId="u2",
               integrations={"Segment.io": False}),
        record(5, "2026-05-01T10:02:40.000Z", type="track", event="C", userId="u2",
               integrations={"Mixpanel": False}),
    ])
    report = counter.report(multiplier=2, minutes=4)
    assert report["api_calls"] == 4  # the repeat is a call; the Segment.io-false one is not
    assert report["not_sent_to_segment"] == 1
    assert report["destinations"] == {"Amplitude": 2, "Mixpanel": 2}
    assert report["months"] == [{"month": "2026-05", "mtu": 3, "user_ids": 2,
                                 "anonymous_ids": 1, "api_calls": 4,
                                 "destinations": {"Amplitude": 2, "Mixpanel": 2}}]
    assert report["per_minute"] == {
        "minutes": ["2026-05-01T09:59", "2026-05-01T10:00", "2026-05-01T10:01",
                    "2026-05-01T10:02"],
        "series": {"Segment": [0, 2, 0, 2], "Amplitude": [0, 1, 0, 1],
                   "Mixpanel": [0, 2, 0, 0]},
    }
    # Observed over the minutes 10:00..10:02 (180 s): 4 calls; 30 days at 2x.
    assert report["observed"]["seconds"] == 180
    expected = round(4 / 180 * 30 * 24 * 3600 * 2)
    assert report["projection"] == {"multiplier": 2, "days": 30, "api_calls": expected,
                                    "mtu": 6, "destinations": {"Amplitude": expected // 2,
                                                               "Mixpanel": expected // 2}}


def test_an_empty_counter_reports_zeros() -> None:
    report = UsageCounter().report()
    assert (report["api_calls"], report["mtu"], report["month"]) == (0, 0, None)
    assert report["projection"]["api_calls"] == 0
    assert report["per_minute"] == {"minutes": [], "series": {"Segment": []}}


def _demo_into(db: Path) -> Collector:
    collector = Collector(db=str(db))
    collector.start()
    with Client("key", host=collector.url, max_retries=0) as client:
        for method, kwargs in demo_stream(seed=7, users=8):
            getattr(client, method)(**kwargs)
        assert client.flush(10)
    return collector


def test_collector_report_reads_a_store_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "store.sqlite3"
    collector = _demo_into(db)
    total = collector.stats()["total"]
    identified = {m["userId"] for m in collector.messages() if m.get("userId")}
    collector.close()
    destinations = tmp_path / "destinations.json"
    destinations.write_text(json.dumps(ROUTES))
    parser = argparse.ArgumentParser(prog="segment-client collector")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["report", "--db", str(db), "--destinations", str(destinations),
                              "--json", "--multiplier", "3"])
    assert args.handler(args) == 0
    report = json.loads(capsys.readouterr().out)
    pages = sum(1 for method, _ in demo_stream(seed=7, users=8) if method == "page")
    assert report["api_calls"] == total
    # Every demo anonymousId is linked by its user's Signed Up in the same month.
    assert report["mtu"] == len(identified) == 8
    assert report["destinations"] == {"Amplitude": total - pages, "Mixpanel": total}
    assert report["projection"]["mtu"] == 24
    args = parser.parse_args(["report", "--db", str(db)])
    assert args.handler(args) == 0
    text = capsys.readouterr().out
    assert f"API calls: {total:,}" in text
    assert "8 MTU (8 userIds + 0 anonymousIds never linked)" in text
    args = parser.parse_args(["report", "--db", str(tmp_path / "none.sqlite3")])
    assert args.handler(args) == 1
    assert "no collector store at" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite3").exists()


def test_collector_report_asks_a_running_collector(capsys: pytest.CaptureFixture[str]) -> None:
    from segment_client.collector import Destinations

    parser = argparse.ArgumentParser(prog="segment-client collector")
    add_parser(parser.add_subparsers())
    with Collector() as collector, Destinations(collector) as destinations:
        with Client("key", host=collector.url, max_retries=0) as client:
            client.track("u1", "Signed Up", anonymous_id="a1")
            client.page(anonymous_id="a2", name="Home")
            assert client.flush(10)
        assert destinations.wait()
        args = parser.parse_args(["report", "--url", collector.url, "--json",
                                  "--multiplier", "4"])
        assert args.handler(args) == 0
        report = json.loads(capsys.readouterr().out)
        assert (report["api_calls"], report["mtu"], report["projection"]["mtu"]) == (2, 2, 8)
        assert report["months"] == destinations.report(4)["months"]
        args = parser.parse_args(["report", "--url", collector.url])
        assert args.handler(args) == 0
        assert "2 MTU (1 userIds + 1 anonymousIds never linked)" in capsys.readouterr().out
    args = parser.parse_args(["report", "--url", collector.url])
    assert args.handler(args) == 1  # stopped: cannot be read
    assert "cannot read" in capsys.readouterr().err
    args = parser.parse_args(["report", "--multiplier", "0"])
    assert args.handler(args) == 2
