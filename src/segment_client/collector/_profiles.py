"""The identity graph as a collector feature: kept up to date from ingest, read by the
debugger's Profiles view and by tests.

`register(collector)` keeps a graph of what the store holds (duplicates left out:
Segment drops them too), brought up to date by each read, and adds the read API:

- `GET /v1/profiles`: every profile (identifiers, counts by source, merges) and the
  number of lints of each.
- `GET /v1/profiles/{id}`: one profile with its merges, refused links, lints and one
  timeline of its events from every source (an absorbed profile's id gives the profile
  it joined); `/v1/profiles/{id}/timeline` and `/v1/profiles/{id}/lints` give parts.
- `GET /v1/profiles/by-event/{eventId}`: the profile of one stored event.
- `GET /v1/lints`: every identity lint.

`GET /v1/events` rows gain `source` (the sending library) and `profile`. Thread-safe:
the graph has its own lock, one lock orders the catching up; ingest never waits for
the graph.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ._http import Request, Response, json_response
from ._identity import IdentityGraph
from ._lints import lint
from ._routes import Handler
from ._sources import source_of
from ._store import StoredRow
from ._unify_rules import UnifyRules

if TYPE_CHECKING:
    from ._server import Collector

__all__ = ["Profiles", "register"]

_PAGE = 10_000


def _ignore(rows: Sequence[StoredRow]) -> None:
    pass  # only clear() matters: rows are read from the store when they are needed


class Profiles:
    """The graph of one collector and its read routes. Thread-safe."""

    def __init__(self, collector: Collector, rules: UnifyRules | None = None) -> None:
        self.collector = collector
        self.graph = IdentityGraph(rules)
        # Ingest does no graph work: a read first adds what was stored since the last
        # one, in id order (the store's ids only grow, even across clear()). So the same
        # messages always give the same profiles, live or rebuilt from a store file.
        self._fed = 0  # the last event id added to the graph
        self._feed_lock = threading.Lock()
        collector.add_listener(_ignore, self._on_clear)

    def _on_clear(self) -> None:
        with self._feed_lock:
            self.graph.clear()

    def catch_up(self) -> None:
        """Add the messages stored since the last call to the graph (paged)."""
        store = self.collector.store
        with self._feed_lock:
            while True:
                rows, _ = store.events(after=self._fed, limit=_PAGE, oldest_first=True)
                for row in rows:
                    if not row["duplicate"]:
                        self.graph.add(row["id"], row["message"], row["receivedAt"])
                if rows:
                    self._fed = rows[-1]["id"]
                if len(rows) < _PAGE:
                    return

    # -- routes ---------------------------------------------------------------------------

    def register(self) -> None:
        routes = self.collector.routes
        routes.add("GET", "/v1/profiles", self.list_profiles)
        routes.add("GET", "/v1/profiles/", self.one_profile, prefix=True)
        routes.add("GET", "/v1/lints", self.all_lints)
        events = routes.find("GET", "/v1/events")
        if events is not None:
            routes.add("GET", "/v1/events", self._marked(events.handler), access=events.access)
        routes.add_view("/static/profiles.html", "Profiles")

    def list_profiles(self, request: Request) -> Response:
        self.catch_up()
        profiles = self.graph.profiles()
        counts = Counter(pid for item in lint(self.graph) for pid in item.profiles)
        return json_response(200, {"profiles": profiles, "total": len(profiles),
                                   "lints": dict(counts),
                                   "unplaced": self.graph.unplaced()})

    def all_lints(self, request: Request) -> Response:
        self.catch_up()
        return json_response(200, {"lints": [item.to_dict() for item in lint(self.graph)]})

    def one_profile(self, request: Request) -> Response:
        self.catch_up()
        parts = [unquote(part) for part in request.path[len("/v1/profiles/"):].split("/")]
        if len(parts) == 2 and parts[0] == "by-event":
            try:
                event_id = int(parts[1])
            except ValueError:
                return json_response(400, {"error": f"event id must be an integer, "
                                                    f"got {parts[1]!r}"})
            found = self.graph.profile_of_event(event_id)
            if found is None:
                return json_response(404, {"error": f"event {event_id} is in no profile "
                                                    "(unknown, a duplicate, or no usable id)"})
            parts = [found]
        if not parts[0] or len(parts) > 2 or (len(parts) == 2 and
                                               parts[1] not in ("timeline", "lints")):
            return json_response(404, {"error": f"no route GET {request.path}"})
        profile = self.graph.profile(parts[0])
        if profile is None:
            return json_response(404, {"error": f"no profile {parts[0]!r}"})
        lints = [item.to_dict() for item in lint(self.graph, profile["id"])]
        if len(parts) == 2 and parts[1] == "timeline":
            return json_response(200, {"id": profile["id"], "timeline": profile["timeline"]})
        if len(parts) == 2:
            return json_response(200, {"id": profile["id"], "lints": lints})
        return json_response(200, {**profile, "lints": lints})

    def _marked(self, events: Handler) -> Handler:
        graph = self.graph

        def handler(request: Request) -> Response:
            response = events(request)
            if response.status != 200:
                return response
            self.catch_up()
            body: dict[str, Any] = json.loads(response.body)
            for row in body.get("events", ()):
                message = row.get("message")
                if isinstance(message, dict):
                    row["source"] = source_of(message).to_dict()
                row["profile"] = graph.profile_of_event(row.get("id", -1))
            response.body = json.dumps(body).encode()
            return response

        return handler


def register(collector: Collector, rules: UnifyRules | None = None) -> Profiles:
    """Keep an identity graph for `collector` and add its routes; returns it."""
    profiles = Profiles(collector, rules)
    profiles.register()
    return profiles
