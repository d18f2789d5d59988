"""Loading stored messages into Segment's warehouse schema, one transaction per chunk.

`Warehouse.load(records)` turns each record into rows (`_schema.rows_for`), creates the
tables and adds the columns they need (a property that first appears late adds its
column, as Segment's loaders do), inserts with a repeated messageId skipped, and upserts
`users` with the latest traits. Not thread-safe: the tailer thread owns it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from segment_client.collector._records import Record, reaches_segment
from segment_client.collector._yield import share_gil

from ._engines import Engine, open_engine, quote
from ._schema import Row, coerce, iso, rows_for

__all__ = ["Warehouse", "redact"]

# A value of this Python type fits a column of this kind as it is.
# Messages turned into rows between two releases of the GIL (see `share_gil`).
_SHARE_EVERY = 8
# (Python type, column kind) pairs stored as they are. Timestamp columns hold canonical
# ISO text (from `rows_for`), which both engines take as it is.
_FITS = frozenset({(str, "text"), (str, "timestamp"), (bool, "boolean"), (int, "bigint"),
                   (float, "float")})


class Warehouse:
    """One warehouse database kept in Segment's schema. Owned by one thread.

    `share_gil`: release the GIL every few messages (a loader thread inside the
    collector's process); a loader process of its own has nobody to share it with.
    """

    def __init__(
        self, url: str, *, engine: Engine | None = None, share_gil: bool = True
    ) -> None:
        self.engine = engine or open_engine(url)
        self.url = redact(url)
        self._share = share_gil
        self._columns = self.engine.columns()
        # Per-batch caches, dropped with the schema cache after a failed transaction:
        # (table, columns) whose columns all exist, and each (table, columns) INSERT.
        self._complete: set[tuple[str, tuple[str, ...]]] = set()
        self._inserts: dict[tuple[str, tuple[str, ...]], str] = {}
        self.rows_written = 0
        self.conversion_losses = 0  # values a column of another kind could not hold

    def close(self) -> None:
        self.engine.close()

    def status(self) -> dict[str, Any]:
        """The URL (password hidden), rows written, values lost to kinds, table count."""
        return {
            "url": self.url,
            "rows_written": self.rows_written,
            "conversion_losses": self.conversion_losses,
            "tables": len(self._columns),
        }

    def tables(self) -> dict[str, list[str]]:
        """Every table and its columns, as loaded so far (a copy)."""
        return {table: list(columns) for table, columns in sorted(self._columns.items())}

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query on the warehouse (from the owning thread)."""
        return self.engine.query(sql, args)

    def schema(self) -> list[dict[str, Any]]:
        """Every table with its columns and row count (from the owning thread)."""
        found = []
        for table, columns in self.tables().items():
            [(rows,)] = self.query(f"SELECT COUNT(*) FROM {self.engine.table(table)}")
            found.append({"table": table, "rows": int(rows), "columns": columns})
        return found

    def load(self, records: Iterable[Record], *, now: dt.datetime | None = None) -> int:
        """Load records in one transaction; returns the rows written (skipped repeats too).

        On a database error the transaction is rolled back, the schema cache reloaded,
        and the error raised for the caller to retry.
        """
        loaded_at = iso(now or dt.datetime.now(dt.timezone.utc))
        rows: list[Row] = []
        share = self._share
        for index, record in enumerate(records):
            if share and not index % _SHARE_EVERY:
                share_gil()
            if record.duplicate:
                continue
            message = record.message
            # `reaches_segment` without its ABC checks for what JSON decodes to.
            integrations = message.get("integrations") if type(message) is dict else None
            if type(integrations) is dict:
                if integrations.get("Segment.io") is False:
                    continue
            elif (integrations is not None or type(message) is not dict) and not \
                    reaches_segment(message):
                continue
            rows.extend(rows_for(message, record.received_at, loaded_at,
                                 f"row-{record.row_id}"))
        if not rows:
            return 0
        # Rows of one shape (table, columns, kinds) share one statement and one check of
        # their kinds: most shapes repeat from message to message.
        groups: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[list[Any]]] = {}
        users: dict[Any, dict[str, Any]] = {}
        for row in rows:
            if row.upsert:
                users.setdefault(row.values["id"], {}).update(row.values)
                continue
            key = (row.table, tuple(row.values), tuple(row.kinds.values()))
            group = groups.get(key)
            if group is None:
                groups[key] = group = []
            group.append(list(row.values.values()))
        engine = self.engine
        engine.begin()
        try:
            self._evolve(rows)
            for (table, columns, kinds), rows_values in groups.items():
                if share:
                    share_gil()
                known = self._columns[table]
                wanted = [known[c] for c in columns]
                if list(kinds) != wanted:
                    # Some value differs from its column's kind: convert those only.
                    rows_values = [
                        [v if (type(v), k) in _FITS else self._convert(v, k)
                         for v, k in zip(values, wanted, strict=True)]
                        for values in rows_values
                    ]
                sql = self._inserts.get((table, columns))
                if sql is None:
                    sql = (f"INSERT INTO {engine.table(table)}"
                           f" ({', '.join(map(quote, columns))})")
                    self._inserts[(table, columns)] = sql
                engine.insert(sql, " ON CONFLICT (id) DO NOTHING", rows_values)
            for merged in users.values():
                columns = tuple(merged)
                updates = ", ".join(
                    f"{quote(c)} = excluded.{quote(c)}" for c in columns if c != "id"
                )
                engine.execute(
                    f"INSERT INTO {engine.table('users')} ({', '.join(map(quote, columns))})"
                    f" VALUES ({', '.join([engine.placeholder] * len(columns))})"
                    f" ON CONFLICT (id) DO UPDATE SET {updates}",
                    [self._param("users", c, v) for c, v in merged.items()],
                )
            engine.commit()
        except BaseException:
            engine.rollback()
            self._columns = self.engine.columns()
            self._complete.clear()
            self._inserts.clear()
            raise
        self.rows_written += len(rows)
        return len(rows)

    def _param(self, table: str, column: str, value: Any) -> Any:
        kind = self._columns[table][column]
        return value if (type(value), kind) in _FITS else self._convert(value, kind)

    def _convert(self, value: Any, kind: str) -> Any:
        # A value of another kind than its column's.
        converted, fitted = coerce(value, kind)
        if not fitted:
            self.conversion_losses += 1
        return self.engine.value(kind, converted)

    def _evolve(self, rows: Sequence[Row]) -> None:
        """Create missing tables and add missing columns (inside the transaction)."""
        engine = self.engine
        complete = self._complete
        wanted: dict[str, dict[str, str]] = {}
        checked: list[tuple[str, tuple[str, ...]]] = []
        for row in rows:
            shape = (row.table, tuple(row.kinds))
            if shape in complete:
                continue  # every column of this shape exists already
            checked.append(shape)
            known = self._columns.get(row.table, {})
            adding = wanted.setdefault(row.table, {})
            for column, kind in row.kinds.items():
                if column not in known and column not in adding:
                    adding[column] = kind
        for table, new in wanted.items():
            if not new:
                continue
            if table not in self._columns:
                # `id` first and the primary key: a repeated messageId is skipped.
                columns = {"id": new.pop("id", "text"), **new}
                definitions = ", ".join(
                    f"{quote(c)} {engine.sql_type(k)}" + (" PRIMARY KEY" if c == "id" else "")
                    for c, k in columns.items()
                )
                engine.execute(f"CREATE TABLE {engine.table(table)} ({definitions})")
                self._columns[table] = columns
                continue
            for column, kind in new.items():
                engine.execute(
                    f"ALTER TABLE {engine.table(table)} ADD COLUMN {quote(column)}"
                    f" {engine.sql_type(kind)}"
                )
                self._columns[table][column] = kind
        # Inside the transaction: a rollback clears this cache with the schema's.
        complete.update(checked)


def redact(url: str) -> str:
    """The URL without its password (for status and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + host))
