"""Builders for identity tests: messages as analytics.js and segment-client send them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from segment_client.collector._identity import IdentityGraph

BROWSER = {"name": "analytics.js", "version": "next-1.84.3"}
SERVER = {"name": "segment-client-python", "version": "1.0.0"}
START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)


class Feed:
    """A graph fed message by message, with ids and timestamps a minute apart."""

    def __init__(self, graph: IdentityGraph | None = None) -> None:
        self.graph = graph or IdentityGraph()
        self.next_id = 0
        self.minute = 0.0

    def send(self, library: dict[str, str] | None, kind: str, *, gap: float = 1.0,
             **fields: Any) -> int:
        """Store one message; returns its event id. `gap`: minutes since the last one."""
        self.next_id += 1
        self.minute += gap
        message: dict[str, Any] = {
            "type": kind,
            "timestamp": (START + dt.timedelta(minutes=self.minute)).isoformat(),
            **fields,
        }
        if library is not None:
            context = dict(message.get("context") or {})
            context["library"] = library
            message["context"] = context
        self.graph.add(self.next_id, message)
        return self.next_id

    def browser(self, kind: str, **fields: Any) -> int:
        return self.send(BROWSER, kind, **fields)

    def server(self, kind: str, **fields: Any) -> int:
        return self.send(SERVER, kind, **fields)

    def profile_of(self, event_id: int) -> str:
        found = self.graph.profile_of_event(event_id)
        assert found is not None, f"event {event_id} joined no profile"
        return found

    def identifiers(self, event_id: int) -> set[tuple[str, str]]:
        profile = self.graph.profile(self.profile_of(event_id))
        assert profile is not None
        return {(item["type"], item["value"]) for item in profile["identifiers"]}
