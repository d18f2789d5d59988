"""The store follower behind the warehouse and the usage counter: both feeds, one order."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from segment_client.collector._follow import StoreFollower
from segment_client.collector._records import Record

AT = "2026-05-01T10:00:00.000Z"


@dataclass(frozen=True)
class Row:  # what the store's listener hands over
    id: int
    received_at: str
    duplicate: bool
    message: dict[str, Any]


class Sink:
    def __init__(self) -> None:
        self.ids: list[int] = []
        self.cleared = 0
        self.closed = False

    def load(self, records: Sequence[Record]) -> None:
        self.ids.extend(r.row_id for r in records)

    def clear(self) -> None:
        self.cleared += 1

    def status(self) -> dict[str, Any]:
        return {"loaded": len(self.ids)}

    def close(self) -> None:
        self.closed = True


class Store:
    """Rows by id; `fetch` counts its calls."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.fetches: list[int] = []
        self.lock = threading.Lock()

    def add(self, count: int) -> list[Row]:
        with self.lock:
            start = len(self.rows) + 1
            new = [Row(i, AT, False, {"type": "track", "event": "E", "messageId": f"m{i}"})
                   for i in range(start, start + count)]
            self.rows.extend(new)
            return new

    def fetch(self, after: int, limit: int) -> list[Record]:
        with self.lock:
            self.fetches.append(after)
            return [Record(r.id, r.received_at, r.message, r.duplicate)
                    for r in self.rows if r.id > after][:limit]


def start(store: Store, **options: Any) -> tuple[StoreFollower, Sink]:
    sink = Sink()
    follower = StoreFollower(store.fetch, sink, name="test-follower", **options)
    follower.start()
    return follower, sink


def test_rows_in_order_come_from_the_listener_not_the_store() -> None:
    store = Store()
    backlog = store.add(5)  # there before the follower: read from the store
    follower, sink = start(store)
    try:
        follower.on_rows(backlog)  # announced late: ignored, the store read covers it
        assert follower.wait_loaded(5)
        fetches = len(store.fetches)
        for _ in range(4):
            follower.on_rows(store.add(3))
        assert follower.wait_loaded(17)
        assert sink.ids == list(range(1, 18))
        assert len(store.fetches) == fetches  # no store read after catching up
        assert follower.status()["lag_rows"] == 0
    finally:
        follower.close()
    assert sink.closed


def test_rows_announced_out_of_order_are_read_from_the_store_once_each() -> None:
    store = Store()
    follower, sink = start(store)
    try:
        assert follower.wait_loaded(0)
        first, second = store.add(3), store.add(3)
        follower.on_rows(second)  # a gap: the follower reads the store from row 1
        follower.on_rows(first)
        assert follower.wait_loaded(6)
        follower.on_rows(store.add(2))
        assert follower.wait_loaded(8)
        assert sink.ids == list(range(1, 9))
    finally:
        follower.close()


def test_too_many_pending_rows_fall_back_to_the_store() -> None:
    store = Store()
    gate = threading.Event()
    entered = threading.Event()

    class SlowSink(Sink):
        def load(self, records: Sequence[Record]) -> None:
            entered.set()
            assert gate.wait(10)
            super().load(records)

    sink = SlowSink()
    follower = StoreFollower(store.fetch, sink, name="test-follower", max_pending=4, chunk=3)
    follower.start()
    try:
        follower.on_rows(store.add(1))  # a store read (not caught up yet), held in load
        assert entered.wait(10)
        for _ in range(3):
            follower.on_rows(store.add(2))  # past max_pending: dropped, read later
        assert follower.status()["lag_rows"] == 7
        gate.set()
        assert follower.wait_loaded(7)
        assert sink.ids == list(range(1, 8))
    finally:
        gate.set()
        follower.close()


def test_a_clear_clears_the_sink_and_skips_what_is_gone() -> None:
    store = Store()
    follower, sink = start(store)
    try:
        follower.on_rows(store.add(2))
        assert follower.wait_loaded(2)
        with store.lock:
            store.rows.clear()
            store.rows.extend([Row(i, AT, False, {}) for i in (1, 2, 3)])  # ids keep growing
        follower.on_clear()
        follower.on_rows([Row(3, AT, False, {"type": "track", "event": "E"})])
        assert follower.wait_loaded(3)
        assert sink.cleared == 1
    finally:
        follower.close()
