"""The collector's warehouse: stored messages kept loaded in Segment's warehouse schema.

`Warehouse(url)` loads records into SQLite (`sqlite:PATH`) or PostgreSQL
(`postgresql://...`, psycopg 3, the `postgres` extra). `WarehouseProcess` keeps it
loaded from a process of its own that reads the store's file (off the collector's GIL);
`WarehouseLoader` does it on a thread instead (an in-memory store, which another process
cannot read). Both report their lag.
"""

from __future__ import annotations

from segment_client.collector._follow import store_source
from segment_client.collector._records import Record

from ._load import Warehouse, redact
from ._loader import THREAD_NAME, WarehouseLoader
from ._process import WarehouseProcess
from ._schema import snake, table_for_event

__all__ = [
    "THREAD_NAME",
    "Record",
    "Warehouse",
    "WarehouseLoader",
    "WarehouseProcess",
    "redact",
    "snake",
    "store_source",
    "table_for_event",
]
