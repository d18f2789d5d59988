"""The collector's warehouse: stored messages kept loaded in Segment's warehouse schema.

`Warehouse(url)` loads records into SQLite (`sqlite:PATH`) or PostgreSQL
(`postgresql://...`, psycopg 3, the `postgres` extra); `WarehouseLoader` runs it on a
thread behind the store and reports its lag.
"""

from __future__ import annotations

from ._load import Record, Warehouse
from ._schema import snake, table_for_event
from ._tailer import WarehouseLoader, redact, store_source

__all__ = ["Record", "Warehouse", "WarehouseLoader", "redact", "snake", "store_source",
           "table_for_event"]
