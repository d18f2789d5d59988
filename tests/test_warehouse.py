"""The warehouse: Segment's schema on SQLite and on a real PostgreSQL server.

The PostgreSQL cases start a throwaway cluster from the Debian package (see
tests/_support/postgres.py); a machine without it fails them, never skips them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segment_client import Client
from segment_client._demo import demo_stream
from segment_client.collector import Collector
from segment_client.collector._warehouse import (
    Record,
    Warehouse,
    WarehouseLoader,
    redact,
    snake,
    store_source,
    table_for_event,
)
from segment_client.collector._warehouse._schema import MAX_TEXT, coerce
from tests._support.postgres import PostgresCluster, find_bin

NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
COMMON = {"id", "received_at", "timestamp", "original_timestamp", "uuid_ts"}
TYPE_TABLES = {"identify": "identifies", "track": "tracks", "page": "pages",
               "screen": "screens", "group": "groups", "alias": "aliases"}


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the module; missing PostgreSQL fails the tests."""
    bin_dir = find_bin()
    if bin_dir is None:
        pytest.fail("PostgreSQL not found under /usr/lib/postgresql/*/bin: install the "
                    "Debian package (apt-get install postgresql); these tests do not skip")
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError:
        pytest.fail("psycopg 3 is missing: pip install 'psycopg[binary]'")
    cluster = PostgresCluster(bin_dir)
    try:
        yield cluster
    finally:
        cluster.stop()


_schemas = iter(range(10_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty warehouse on each engine (a new schema per PostgreSQL test)."""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'warehouse.sqlite3'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return f"{cluster.url}&schema=test_{next(_schemas)}"


def send(collector: Collector, calls: list[tuple[str, dict[str, Any]]]) -> None:
    with Client("key", host=collector.url, max_retries=0) as client:
        for method, kwargs in calls:
            getattr(client, method)(**kwargs)
        assert client.flush(10)


def demo_calls() -> list[tuple[str, dict[str, Any]]]:
    calls = list(demo_stream(seed=7, users=8))
    # Beyond the demo: a screen, an alias, a later identify that changes one trait.
    calls.append(("screen", {"user_id": "user-001", "name": "Settings",
                             "properties": {"tab": "billing"}}))
    calls.append(("alias", {"previous_id": "anon-x", "user_id": "user-001"}))
    calls.append(("identify", {"user_id": "user-001", "traits": {"plan": "team"}}))
    return calls


@pytest.fixture
def loaded(warehouse_url: str) -> Iterator[tuple[Collector, WarehouseLoader]]:
    """A collector that received the demo, and a loader that has loaded all of it."""
    with Collector() as collector:
        loader = WarehouseLoader(warehouse_url, store_source(collector.store))
        loader.start()
        try:
            send(collector, demo_calls())
            loader.notify(collector.store.events(limit=1)[1])
            assert loader.wait_loaded(collector.store.events(limit=1)[1])
            yield collector, loader
        finally:
            loader.close()


def tables(loader: WarehouseLoader) -> dict[str, list[str]]:
    return loader.warehouse.tables()


def count(loader: WarehouseLoader, table: str) -> int:
    return int(loader.query(f'SELECT COUNT(*) FROM {loader.warehouse.engine.table(table)}')[0][0])


def test_tables_and_columns_follow_segments_naming(
    loaded: tuple[Collector, WarehouseLoader],
) -> None:
    collector, loader = loaded
    schema = tables(loader)
    events = {m["event"] for m in collector.messages(type="track")}
    assert set(schema) == {*TYPE_TABLES.values(), "users", *map(table_for_event, events)}
    assert {table_for_event(e) for e in events} == {
        "signed_up", "feature_used", "product_viewed", "product_added", "checkout_started",
        "order_completed"}
    for table, columns in schema.items():
        assert NAME.match(table), table
        for column in columns:
            assert NAME.match(column), (table, column)
        assert columns[0] == "id"
        if table != "users":
            assert set(columns) >= COMMON, table
            assert {"context_library_name", "context_library_version"} <= set(columns)
    assert "anonymous_id" not in schema["users"]
    assert set(schema["users"]) == {"id", "received_at", "uuid_ts", "name", "email", "plan",
                                    "company"}
    assert {"event", "event_text"} <= set(schema["tracks"])
    assert {"order_id", "revenue", "currency", "products"} <= set(schema["order_completed"])
    assert {"path", "url", "title", "name", "category"} <= set(schema["pages"])
    assert {"group_id", "name", "industry", "employees"} <= set(schema["groups"])
    assert {"previous_id", "user_id"} <= set(schema["aliases"])
    assert {"name", "tab"} <= set(schema["screens"])
    # Properties live in the event's own table, not in tracks.
    assert "order_id" not in schema["tracks"]


def test_row_counts_equal_the_stored_messages(loaded: tuple[Collector, WarehouseLoader]) -> None:
    collector, loader = loaded
    stats = collector.stats()
    for kind, table in TYPE_TABLES.items():
        assert count(loader, table) == stats["by_type"].get(kind, 0), table
    for event, n in stats["by_event"].items():
        assert count(loader, table_for_event(event)) == n, event
    rows = loader.query(
        f"SELECT event, event_text, COUNT(*) FROM {loader.warehouse.engine.table('tracks')}"
        " GROUP BY event, event_text ORDER BY event_text"
    )
    assert [(e, t, int(n)) for e, t, n in rows] == [
        (table_for_event(t), t, n) for t, n in sorted(stats["by_event"].items())]


def test_users_hold_one_row_per_user_with_the_latest_traits(
    loaded: tuple[Collector, WarehouseLoader],
) -> None:
    collector, loader = loaded
    identified = {m["userId"] for m in collector.messages(type="identify")}
    assert count(loader, "users") == len(identified) == 8
    users = loader.warehouse.engine.table("users")
    rows = loader.query(f"SELECT id, plan, email, name FROM {users} ORDER BY id")
    assert [r[0] for r in rows] == sorted(identified)
    first = rows[0]
    # The later identify changed the plan and kept the traits it did not name.
    assert first == ("user-001", "team", "ada@acme.example", "Ada Lovelace")
    demo_plan = next(m["traits"]["plan"] for m in collector.messages(type="identify")
                     if m["userId"] == "user-002")
    assert rows[1][1] == demo_plan


def test_values_as_segment_stores_them(loaded: tuple[Collector, WarehouseLoader]) -> None:
    collector, loader = loaded
    table = loader.warehouse.engine.table("order_completed")
    first = collector.messages(event="Order Completed")[0]
    placeholder = loader.warehouse.engine.placeholder
    [(products, revenue, stamp)] = loader.query(
        f"SELECT products, revenue, original_timestamp FROM {table} WHERE id = {placeholder}",
        [first["messageId"]],
    )
    assert json.loads(products) == first["properties"]["products"]  # arrays as JSON text
    assert float(revenue) == first["properties"]["revenue"]
    if isinstance(stamp, dt.datetime):
        stamp = stamp.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")
    assert stamp == first["timestamp"]


def test_a_late_property_adds_its_column(loaded: tuple[Collector, WarehouseLoader]) -> None:
    collector, loader = loaded
    assert "coupon_code" not in tables(loader)["order_completed"]
    before = count(loader, "order_completed")
    long_text = "x" * 600
    send(collector, [("track", {"user_id": "user-001", "event": "Order Completed",
                                "properties": {"order_id": "o-late", "couponCode": "SPRING",
                                               "note": long_text,
                                               "shipping": {"method": "Express Post"}}})])
    last = collector.store.events(limit=1)[1]
    loader.notify(last)
    assert loader.wait_loaded(last)
    columns = tables(loader)["order_completed"]
    assert {"coupon_code", "note", "shipping_method"} <= set(columns)
    table = loader.warehouse.engine.table("order_completed")
    assert count(loader, "order_completed") == before + 1
    rows = loader.query(f"SELECT order_id, coupon_code, note, shipping_method FROM {table}"
                        " WHERE coupon_code IS NOT NULL")
    assert rows == [("o-late", "SPRING", "x" * MAX_TEXT, "Express Post")]
    nulls = loader.query(f"SELECT COUNT(*) FROM {table} WHERE coupon_code IS NULL")
    assert int(nulls[0][0]) == before


QUERIES = [
    "SELECT event_text, COUNT(*) FROM tracks GROUP BY event_text ORDER BY event_text",
    "SELECT COUNT(DISTINCT user_id), COUNT(DISTINCT anonymous_id) FROM pages",
    "SELECT plan, COUNT(*) FROM users GROUP BY plan ORDER BY plan",
    "SELECT name, COUNT(*) FROM pages GROUP BY name ORDER BY name",
    "SELECT u.plan, COUNT(*) FROM order_completed o JOIN users u ON u.id = o.user_id"
    " GROUP BY u.plan ORDER BY u.plan",
    "SELECT SUM(quantity), MAX(price) FROM product_added",
    "SELECT industry, SUM(employees) FROM groups GROUP BY industry ORDER BY industry",
]


def test_the_same_sql_gives_the_same_answer_on_both_engines(
    postgres: PostgresCluster, tmp_path: Path,
) -> None:
    answers: dict[str, list[Any]] = {}
    with Collector() as collector:
        send(collector, demo_calls())
        last = collector.store.events(limit=1)[1]
        for name, url in [("sqlite", f"sqlite:{tmp_path / 'w.sqlite3'}"),
                          ("postgresql", postgres.url)]:  # the public schema: plain names
            loader = WarehouseLoader(url, store_source(collector.store))
            loader.start()
            try:
                assert loader.wait_loaded(last)
                answers[name] = [[tuple(_plain(v) for v in row) for row in loader.query(sql)]
                                 for sql in QUERIES]
            finally:
                loader.close()
    assert answers["sqlite"] == answers["postgresql"]
    assert answers["sqlite"][2] == sorted(Counter(
        _latest_plans()).items())


def _plain(value: Any) -> Any:
    # PostgreSQL's SUM(bigint) is numeric (a Decimal); SQLite's is an integer.
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _latest_plans() -> list[str]:
    plans: dict[str, str] = {}
    for method, kwargs in demo_calls():
        if method == "identify" and "plan" in kwargs.get("traits", {}):
            plans[kwargs["user_id"]] = kwargs["traits"]["plan"]
    return list(plans.values())


SNAKE = [
    ("productId", "product_id"),
    ("Order Completed", "order_completed"),
    ("HTTPStatus", "http_status"),
    ("already_snake", "already_snake"),
    ("3d secure", "_3d_secure"),
    ("  spaced  out ", "spaced_out"),
    ("ÜberCool", "ber_cool"),
    ("!!!", "_"),
    ("a" * 80, "a" * 63),
]


@pytest.mark.parametrize(("name", "expected"), SNAKE)
def test_snake_case(name: str, expected: str) -> None:
    assert snake(name) == expected


def test_event_tables_never_take_a_type_tables_name() -> None:
    assert table_for_event("Identifies") == "identifies_event"
    assert table_for_event("users") == "users_event"
    assert table_for_event("Tracks Viewed") == "tracks_viewed"


COERCE = [
    ("text-keeps-strings", "x", "text", ("x", True)),
    ("text-takes-numbers", 12, "text", ("12", True)),
    ("text-takes-booleans", True, "text", ("true", True)),
    ("bigint-takes-integral-floats", 3.0, "bigint", (3, True)),
    ("bigint-refuses-fractions", 3.5, "bigint", (None, False)),
    ("bigint-refuses-text", "3", "bigint", (None, False)),
    ("float-takes-ints", 3, "float", (3.0, True)),
    ("boolean-refuses-ints", 1, "boolean", (None, False)),
    ("timestamp-parses", "2024-05-01T09:00:00+02:00", "timestamp",
     ("2024-05-01T07:00:00.000Z", True)),
    ("timestamp-refuses-text", "soon", "timestamp", (None, False)),
]


@pytest.mark.parametrize(("value", "kind", "expected"), [c[1:] for c in COERCE],
                         ids=[c[0] for c in COERCE])
def test_a_column_keeps_its_kind(value: Any, kind: str, expected: tuple[Any, bool]) -> None:
    assert coerce(value, kind) == expected


def test_conflicting_kinds_store_null_and_are_counted(tmp_path: Path) -> None:
    warehouse = Warehouse(f"sqlite:{tmp_path / 'w.sqlite3'}")
    base = {"type": "track", "event": "Tick", "userId": "u"}
    warehouse.load([Record(1, "2024-05-01T00:00:00.000Z",
                           {**base, "messageId": "a", "properties": {"n": 1}}),
                    Record(2, "2024-05-01T00:00:00.000Z",
                           {**base, "messageId": "b", "properties": {"n": "many"}})])
    assert warehouse.query("SELECT id, n FROM tick ORDER BY id") == [("a", 1), ("b", None)]
    assert warehouse.conversion_losses == 1
    warehouse.close()


def test_repeats_and_messages_segment_never_receives_are_skipped(tmp_path: Path) -> None:
    warehouse = Warehouse(f"sqlite:{tmp_path / 'w.sqlite3'}")
    old = {"type": "identify", "userId": "u", "messageId": "i1", "traits": {"plan": "free"}}
    new = {"type": "identify", "userId": "u", "messageId": "i2", "traits": {"plan": "pro"}}
    hidden = {"type": "track", "event": "Secret", "userId": "u", "messageId": "s",
              "integrations": {"Segment.io": False}}
    at = "2024-05-01T00:00:00.000Z"
    warehouse.load([Record(1, at, old), Record(2, at, new), Record(3, at, old, duplicate=True),
                    Record(4, at, hidden)])
    warehouse.load([Record(5, at, new)])  # the same messageId again: inserted once
    assert warehouse.query("SELECT plan FROM users") == [("pro",)]
    assert warehouse.query("SELECT COUNT(*) FROM identifies") == [(2,)]
    assert "secret" not in warehouse.tables()
    warehouse.close()


def test_a_warehouse_reopened_continues_its_schema(tmp_path: Path) -> None:
    url = f"sqlite:{tmp_path / 'w.sqlite3'}"
    at = "2024-05-01T00:00:00.000Z"
    first = Warehouse(url)
    first.load([Record(1, at, {"type": "track", "event": "A", "messageId": "1",
                               "userId": "u", "properties": {"n": 1}})])
    first.close()
    again = Warehouse(url)
    assert again.tables()["a"][:1] == ["id"]
    again.load([Record(2, at, {"type": "track", "event": "A", "messageId": "2",
                               "userId": "u", "properties": {"n": 2.5, "m": True}})])
    assert again.query("SELECT id, n, m FROM a ORDER BY id") == [("1", 1, None), ("2", None, 1)]
    again.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_loader_reports_its_lag_and_catches_up(tmp_path: Path) -> None:
    clock = _Clock()
    gate = threading.Event()
    fetching = threading.Event()
    at = "2024-05-01T00:00:00.000Z"
    stored = [Record(i, at, {"type": "track", "event": "E", "messageId": f"m{i}",
                             "userId": "u"}) for i in range(1, 11)]

    def fetch(after: int, limit: int) -> list[Record]:
        fetching.set()
        assert gate.wait(10)
        return [r for r in stored if r.row_id > after][:limit]

    loader = WarehouseLoader(f"sqlite:{tmp_path / 'w.sqlite3'}", fetch, chunk=4, clock=clock)
    loader.start()
    try:
        assert fetching.wait(10)  # the first look is blocked in fetch
        loader.notify(10)
        clock.now = 102.5
        status = loader.status()
        assert (status["lag_rows"], status["lag_seconds"], status["loaded_id"]) == (10, 2.5, 0)
        gate.set()
        assert loader.wait_loaded(10)
        status = loader.status()
        assert (status["lag_rows"], status["lag_seconds"], status["rows_written"]) == (0, 0.0, 20)
        assert loader.query("SELECT COUNT(*) FROM e") == [(10,)]
    finally:
        gate.set()
        loader.close()


def test_a_failing_warehouse_is_reported_and_retried(tmp_path: Path) -> None:
    attempts: list[int] = []
    failed = threading.Event()
    at = "2024-05-01T00:00:00.000Z"

    def fetch(after: int, limit: int) -> list[Record]:
        attempts.append(after)
        if len(attempts) == 1:
            failed.set()
            raise OSError("database is away")
        return [Record(1, at, {"type": "track", "event": "E", "messageId": "m1",
                               "userId": "u"})][: 1 if after < 1 else 0]

    loader = WarehouseLoader(f"sqlite:{tmp_path / 'w.sqlite3'}", fetch, retry_wait=0.01)
    loader.start()
    try:
        assert failed.wait(10)
        loader.notify(1)
        assert loader.wait_loaded(1)
        assert loader.status()["error"] is None
        assert attempts[:2] == [0, 0]
    finally:
        loader.close()


def test_bad_urls_and_passwords() -> None:
    with pytest.raises(ValueError, match="expected sqlite:PATH or postgresql://"):
        Warehouse("mysql://x")
    with pytest.raises(ValueError, match="expected sqlite:PATH"):
        Warehouse("sqlite:")
    assert redact("postgresql://bob:s3cret@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert redact("postgresql://db/x") == "postgresql://db/x"
