"""The SQL engines a warehouse loads into: SQLite (stdlib) and PostgreSQL (psycopg 3).

An engine knows its connection, its SQL types and placeholders, how to list existing
tables and columns, and how to run one transaction. Not thread-safe: one loader thread
owns an engine.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from segment_client import MissingDependencyError

__all__ = ["Engine", "PostgresEngine", "SqliteEngine", "open_engine", "quote"]


def quote(name: str) -> str:
    """A quoted SQL identifier (both engines use double quotes)."""
    return '"' + name.replace('"', '""') + '"'


class Engine(Protocol):
    """What the loader needs from a database."""

    url: str
    placeholder: str

    def sql_type(self, kind: str) -> str: ...
    def table(self, name: str) -> str: ...  # the qualified, quoted table name
    def columns(self) -> dict[str, dict[str, str]]: ...  # table -> column -> kind
    def execute(self, sql: str, args: Sequence[Any] = ()) -> None: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    # `head VALUES (...), ... tail` for every row: the engine's fastest way.
    def insert(self, head: str, tail: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def value(self, kind: str, value: Any) -> Any: ...  # a coerced value as a parameter
    def close(self) -> None: ...


_SQLITE_TYPES = {"text": "TEXT", "bigint": "BIGINT", "float": "DOUBLE PRECISION",
                 "boolean": "BOOLEAN", "timestamp": "TIMESTAMP"}
_PG_TYPES = {"text": "text", "bigint": "bigint", "float": "double precision",
             "boolean": "boolean", "timestamp": "timestamp with time zone"}


def _kind(sql_type: str) -> str:
    text = sql_type.lower()
    if "time" in text:
        return "timestamp"
    if "bool" in text:
        return "boolean"
    if "int" in text:
        return "bigint"
    if "double" in text or "real" in text or "float" in text or "numeric" in text:
        return "float"
    return "text"


class SqliteEngine:
    """A SQLite file (`sqlite:PATH`; `sqlite::memory:` for tests)."""

    placeholder = "?"

    def __init__(self, url: str, path: str) -> None:
        self.url = url
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")

    def sql_type(self, kind: str) -> str:
        return _SQLITE_TYPES[kind]

    def table(self, name: str) -> str:
        return quote(name)

    def columns(self) -> dict[str, dict[str, str]]:
        tables = [row[0] for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )]
        return {
            table: {row[1]: _kind(row[2]) for row in
                    self._db.execute(f"PRAGMA table_info({quote(table)})")}
            for table in tables
        }

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._db.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    def insert(self, head: str, tail: str, rows: Sequence[Sequence[Any]]) -> None:
        # One prepared statement, stepped per row: SQLite's fastest.
        marks = ", ".join("?" * len(rows[0]))
        self._db.executemany(f"{head} VALUES ({marks}){tail}", rows)

    def begin(self) -> None:
        self._db.execute("BEGIN")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._db.execute(sql, args).fetchall())

    def value(self, kind: str, value: Any) -> Any:
        return value

    def close(self) -> None:
        self._db.close()


_SCRATCH = '"segment_client_load"'  # the COPY target, dropped at once or at commit


class PostgresEngine:
    """A PostgreSQL database (`postgresql://...`; `?schema=NAME`, default `public`)."""

    placeholder = "%s"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ModuleNotFoundError:
            raise MissingDependencyError(
                "a postgresql:// warehouse needs psycopg 3: pip install "
                "'segment-client[postgres]'"
            ) from None
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.schema = query.pop("schema", "public")
        self.url = url
        conninfo = urlunsplit(parts._replace(query=urlencode(query)))
        self._db = psycopg.connect(conninfo, autocommit=True)
        self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")

    def sql_type(self, kind: str) -> str:
        return _PG_TYPES[kind]

    def table(self, name: str) -> str:
        return f"{quote(self.schema)}.{quote(name)}"

    def columns(self) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        rows = self._db.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s ORDER BY table_name, ordinal_position",
            (self.schema,),
        ).fetchall()
        for table, column, data_type in rows:
            found.setdefault(table, {})[column] = _kind(data_type)
        return found

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._db.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._db.cursor() as cursor:
            cursor.executemany(sql, rows)

    def insert(self, head: str, tail: str, rows: Sequence[Sequence[Any]]) -> None:
        # COPY into a scratch table, then one INSERT ... SELECT: COPY adapts rows in C
        # and the server plans one statement. (A statement of many rows' placeholders
        # is parsed again by psycopg on every call; one statement per row costs the
        # server a round of work per row.) `head` is `INSERT INTO table (columns)`.
        table, columns = head[len("INSERT INTO "):].split(" (", 1)
        columns = columns.rstrip(")")
        self._db.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_SCRATCH} (LIKE {table}) ON COMMIT DROP"
        )
        with self._db.cursor() as cursor:
            with cursor.copy(f"COPY {_SCRATCH} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(f"{head} SELECT {columns} FROM {_SCRATCH}{tail}")
        self._db.execute(f"DROP TABLE {_SCRATCH}")

    def begin(self) -> None:
        self._db.execute("BEGIN")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        import psycopg

        if self._db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self._db.execute("ROLLBACK")

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._db.execute(sql, args).fetchall())

    def value(self, kind: str, value: Any) -> Any:
        if kind == "timestamp" and isinstance(value, str):
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value

    def close(self) -> None:
        self._db.close()


def open_engine(url: str) -> Engine:
    """An engine for `sqlite:PATH` or `postgresql://...` (also `postgres://`).

    Raises ValueError for another scheme, MissingDependencyError without psycopg, and
    the driver's error when the database cannot be reached.
    """
    if url.startswith("sqlite:"):
        path = url[len("sqlite:"):]
        if path.startswith("//"):
            path = path[2:]  # sqlite:///tmp/x -> /tmp/x
        if not path:
            raise ValueError(f"warehouse URL {url!r}: expected sqlite:PATH")
        return SqliteEngine(url, path)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresEngine(url)
    raise ValueError(
        f"warehouse URL {url!r}: expected sqlite:PATH or postgresql://USER@HOST/DB"
    )
