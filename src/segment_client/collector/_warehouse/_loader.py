"""`WarehouseLoader`: a warehouse kept loaded behind the store by a follower thread."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from segment_client.collector._follow import Fetch, StoreFollower

from ._load import Warehouse

__all__ = ["THREAD_NAME", "WarehouseLoader"]

THREAD_NAME = "segment_client.collector.warehouse"


class WarehouseLoader(StoreFollower):
    """Loads the store into one warehouse on a background thread. Thread-safe.

    Opening the warehouse happens in the constructor, so a bad URL or an unreachable
    database fails there (ValueError, MissingDependencyError, the driver's error),
    before the collector serves.
    """

    def __init__(
        self,
        url: str,
        fetch: Fetch,
        *,
        chunk: int = 2000,
        gather: float = 0.05,
        retry_wait: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.warehouse = Warehouse(url)
        super().__init__(fetch, self.warehouse, name=THREAD_NAME, chunk=chunk,
                         gather=gather, retry_wait=retry_wait, clock=clock)

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query on the warehouse between loads (blocks while one runs)."""
        result: list[tuple[Any, ...]] = self.read(lambda warehouse: warehouse.query(sql, args))
        return result

    def schema(self) -> list[dict[str, Any]]:
        """Every table with its columns and row count (blocks while a load runs)."""
        result: list[dict[str, Any]] = self.read(lambda warehouse: warehouse.schema())
        return result
