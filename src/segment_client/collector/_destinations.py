"""Routing, warehouse and usage attached to a running collector: `Destinations`.

`Destinations(collector, "destinations.toml", warehouse="sqlite:wh.sqlite3")` follows
the collector's store and adds read routes and the Usage view. Ingest never waits for
it: usage is counted when it is read (from the store, by row id), and the warehouse is
loaded behind the store by a process of its own (a store in a file) or a thread (an
in-memory store, which another process cannot read).

- `GET /v1/destinations`: the destinations, their filters, events delivered to each.
- `GET /v1/routing?ids=1,2,3` and `GET /v1/routing/<id>`: which destinations receive a
  stored message (by its row id) and why.
- `GET /v1/usage?multiplier=2&minutes=60`: MTUs, API calls, events per destination,
  the projected month, events per minute.
- `GET /v1/warehouse`: the warehouse loader's lag, errors and size (`?schema=1`: every
  table with its columns and row count).
- the Usage view, `/static/usage.html`.

Thread-safe. `close()` stops following the store and closes the warehouse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._follow import store_source
from ._http import HttpError, Request, Response, json_response
from ._routes import int_arg
from ._routing import Destination, Router, Routing, load_destinations
from ._routing._command import filter_text
from ._usage import Linker, UsageCounter
from ._usage._on_read import CountOnRead

if TYPE_CHECKING:
    from ._server import Collector
    from ._warehouse import WarehouseLoader, WarehouseProcess

__all__ = ["Destinations", "attach_options", "graph_linker"]

_MAX_IDS = 500
_MAX_SPAN = 5000  # the widest row-id range one routing lookup reads


class Destinations:
    """Routing, usage counting and (optionally) a warehouse for one collector.

    Args:
        collector: the collector to follow (started or not).
        destinations: a destinations file (TOML or JSON), a list of `Destination`, or
            None (no destinations: usage still counts MTUs and API calls).
        warehouse: `sqlite:PATH` or `postgresql://...` to keep loaded, or None.
        linked: `linked(anonymous_id) -> bool`, an identity graph's answer for the MTU
            count. None: the collector's own identity graph when it has one (see
            `graph_linker`), else only the links messages carrying both ids make.

    Raises DestinationsError or OSError for a bad destinations file, ValueError /
    MissingDependencyError / the driver's error for a warehouse that cannot be opened;
    nothing is attached then.
    """

    def __init__(
        self,
        collector: Collector,
        destinations: str | Path | list[Destination] | None = None,
        *,
        warehouse: str | None = None,
        linked: Linker | None = None,
    ) -> None:
        if destinations is None:
            listed: list[Destination] = []
        elif isinstance(destinations, (str, Path)):
            listed = load_destinations(destinations)
        else:
            listed = list(destinations)
        self.collector = collector
        self.router = Router(listed)
        fetch = store_source(collector.store)
        self.loader: WarehouseLoader | WarehouseProcess | None = None
        if warehouse is not None:
            from ._warehouse import WarehouseLoader, WarehouseProcess

            store = collector.store
            if store.persist and store.path != ":memory:":
                # Off the collector's GIL: the loader process reads the store's file.
                self.loader = WarehouseProcess(warehouse, store.path)
            else:
                self.loader = WarehouseLoader(warehouse, fetch)
        # Usage is counted when read; the warehouse loads behind the store.
        self.usage = CountOnRead(fetch, UsageCounter(self.router, linked))
        self._graph = None if linked is not None else graph_linker(collector)
        self._removers = [collector.add_listener(self.usage.on_rows, self.usage.on_clear)]
        if self.loader is not None:
            self._removers.append(collector.add_listener(self.loader.on_rows,
                                                         self.loader.on_clear))
            self.loader.start()
        self._register()

    # -- Python API ---------------------------------------------------------------------

    def route(self, message: dict[str, Any]) -> Routing:
        """The routing of one message (pure; need not be stored)."""
        return self.router.route(message)

    def routing(self, row_id: int) -> dict[str, Any] | None:
        """The routing of the stored message with this row id (None: no such row)."""
        return self._routings([row_id]).get(row_id)

    def report(self, multiplier: float = 1.0, minutes: int = 60) -> dict[str, Any]:
        """The usage report (see `UsageCounter.report`), counting every message stored
        so far first (blocks while it counts what is new)."""
        linked = self._graph() if self._graph is not None else None
        return self.usage.read(lambda counter: counter.report(multiplier, minutes, linked))

    def wait(self, timeout: float | None = 10.0) -> bool:
        """Block until the warehouse has loaded every stored message (True at once
        without a warehouse: usage is counted when read)."""
        if self.loader is None:
            return True
        return self.loader.wait_loaded(self.collector.store.events(limit=1)[1], timeout)

    def warehouse_status(self, schema: bool = False) -> dict[str, Any]:
        """The loader's lag, error and size; `{"enabled": False}` without a warehouse.

        `schema`: also every table with its columns and row count (queries the warehouse
        between two loads).
        """
        if self.loader is None:
            return {"enabled": False}
        status: dict[str, Any] = {"enabled": True, **self.loader.status()}
        if schema:
            try:
                status["schema"] = self.loader.schema()
            except RuntimeError as exc:  # the loader process is down: status says why
                status["schema_error"] = str(exc)
        return status

    def close(self) -> None:
        """Stop following the store, stop the threads, close the warehouse."""
        for remove in self._removers:
            remove()
        self._removers = []
        if self.loader is not None:
            self.loader.close()

    def __enter__(self) -> Destinations:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- routes -------------------------------------------------------------------------

    def _routings(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        low, high = min(ids), max(ids)
        wanted = set(ids)
        found: dict[int, dict[str, Any]] = {}
        # One read per window of row ids: the debugger asks for a page of neighbours.
        start = low
        while start <= high:
            rows, _ = self.collector.store.events(after=start - 1, limit=_MAX_SPAN,
                                                  oldest_first=True)
            for row in rows:
                if row["id"] > high:
                    break
                if row["id"] in wanted:
                    found[row["id"]] = {
                        "id": row["id"],
                        "messageId": row["message"].get("messageId"),
                        "duplicate": row["duplicate"],
                        **self.router.route(row["message"]).to_dict(),
                    }
            if not rows or rows[-1]["id"] >= high:
                break
            start = rows[-1]["id"] + 1
        return found

    def _register(self) -> None:
        routes = self.collector.routes

        def destinations(request: Request) -> Response:
            delivered = self.usage.read(lambda counter: counter.delivered())
            return json_response(200, {
                "destinations": [
                    {"name": d.name, "enabled": d.enabled,
                     "filters": [filter_text(f) for f in d.filters],
                     "events": delivered.get(d.name, 0)}
                    for d in self.router.destinations
                ],
            })

        def routing_many(request: Request) -> Response:
            text = request.query().get("ids", "")
            try:
                ids = [int(part) for part in text.split(",") if part.strip()]
            except ValueError:
                raise HttpError(400, f"ids must be comma-separated row ids, got {text!r}") \
                    from None
            if len(ids) > _MAX_IDS:
                raise HttpError(400, f"at most {_MAX_IDS} ids per request, got {len(ids)}")
            found = self._routings(ids)
            return json_response(200, {
                "destinations": self.router.names,
                "routing": {str(i): found[i] for i in ids if i in found},
            })

        def routing_one(request: Request) -> Response:
            text = request.path[len("/v1/routing/"):]
            if not text.isdigit():
                raise HttpError(400, f"expected /v1/routing/<row id>, got {request.path!r}")
            found = self.routing(int(text))
            if found is None:
                return json_response(404, {"error": f"no stored message with id {text}"})
            return json_response(200, found)

        def usage(request: Request) -> Response:
            query = request.query()
            multiplier = _float_arg(query, "multiplier", 1.0)
            minutes = int_arg(query, "minutes", 60, maximum=24 * 60) or 60
            return json_response(200, self.report(multiplier, minutes))

        def warehouse(request: Request) -> Response:
            schema = request.query().get("schema") in ("1", "true")
            return json_response(200, self.warehouse_status(schema))

        routes.add("GET", "/v1/destinations", destinations)
        routes.add("GET", "/v1/routing", routing_many)
        routes.add("GET", "/v1/routing/", routing_one, prefix=True)
        routes.add("GET", "/v1/usage", usage)
        routes.add("GET", "/v1/warehouse", warehouse)
        routes.add_view("/static/usage.html", "Usage")


def graph_linker(collector: Any) -> Callable[[], Linker] | None:
    """The collector's identity graph as an MTU hook, or None when it has none.

    The graph (`collector.profiles`, with `catch_up()` and `graph.profiles()` listing
    each profile's `identifiers` as `{type, value}`) is brought up to date and read once
    per report: an anonymousId counts as linked when its profile holds a `user_id`.
    """
    profiles: Any = getattr(collector, "profiles", None)
    graph: Any = getattr(profiles, "graph", None)
    if not callable(getattr(profiles, "catch_up", None)) or not callable(
        getattr(graph, "profiles", None)
    ):
        return None

    def linker() -> Linker:
        profiles.catch_up()
        linked: set[str] = set()
        for profile in graph.profiles():
            identifiers = profile.get("identifiers") or []
            if any(i.get("type") == "user_id" for i in identifiers):
                linked.update(str(i.get("value")) for i in identifiers
                              if i.get("type") == "anonymous_id")
        return linked.__contains__

    return linker


def _float_arg(query: dict[str, str], name: str, default: float) -> float:
    if name not in query:
        return default
    try:
        value = float(query[name])
    except ValueError:
        raise HttpError(400, f"{name} must be a number, got {query[name]!r}") from None
    if not math.isfinite(value) or not 0 < value <= 1_000_000:
        raise HttpError(400, f"{name} must be above 0 and at most 1000000, got {value}")
    return value


def attach_options(
    collector: Collector, destinations: str | None, warehouse: str | None
) -> Destinations:
    """`Destinations` for the `--destinations` / `--warehouse` options.

    Raises UsageError naming the option (the collector is closed then).
    """
    from segment_client._cliargs import UsageError

    from ._routing import DestinationsError

    try:
        listed = load_destinations(destinations) if destinations else []
    except (OSError, DestinationsError) as exc:
        collector.close()
        raise UsageError(f"--destinations: {exc}") from None
    try:
        return Destinations(collector, listed, warehouse=warehouse)
    except Exception as exc:  # noqa: BLE001 - also the driver's own (cannot connect, ...)
        collector.close()
        raise UsageError(f"--warehouse: {type(exc).__name__}: {exc}") from None
