"""Helpers for testing code that uses segment_client (and for the library's own tests).

`RecordingTransport` stands in for the HTTP transport: it records every batch as decoded
message dicts, can be scripted to fail, and lets a test wait for batches without sleeping.

```python
from segment_client import Client
from segment_client.testing import RecordingTransport

transport = RecordingTransport()
client = Client("test-key", transport=transport)
client.track("user-1", "Signed Up")
client.flush()
assert transport.messages[0]["event"] == "Signed Up"
```
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from ._client import Client
from ._json import convert, dumps, loads
from ._transports import Transport
from ._transports._recording import RecordingTransport

__all__ = ["RecordingTransport", "SegmentRecorder"]


# -- recording clients in users' tests ---------------------------------------------------

_UNSET: Any = object()
_CONVERTED = (
    dt.datetime, dt.date, dt.time, dt.timedelta, Decimal, uuid.UUID, PurePath, enum.Enum,
    bytes, bytearray, memoryview,
)
# How long the recorder waits for a client's queue before it reads what was recorded.
_FLUSH_TIMEOUT_S = 5.0
_SUMMARY_CHARS = 160

# Per message type: (argument name, wire key) of the field named positionally by the
# assertion (event, group_id...), shown first in summaries.
_KEY_FIELD: dict[str, tuple[str, str]] = {
    "track": ("event", "event"),
    "group": ("group_id", "groupId"),
    "page": ("name", "name"),
    "screen": ("name", "name"),
    "alias": ("previous_id", "previousId"),
}
_PAYLOAD_KEY = {"track": "properties", "page": "properties", "screen": "properties",
                "identify": "traits", "group": "traits"}


class SegmentRecorder:
    """Records what clients send, for assertions in tests; the `segment_recorder` fixture.

    A recorder owns one `RecordingTransport`. `client()` builds a `Client` that sends to
    it; `attach(client)` points an existing client (a module-level one, or one an
    integration manages) at it until `detach()` / `close()`. Reading `messages` or any
    `assert_*` first flushes every client the recorder knows, so assertions see every
    call made before them, without sleeping.

    Recorded messages are the decoded JSON that would have gone over the wire: ids are
    strings, datetimes ISO strings. Expected values are put through the same encoding
    before comparing, so `properties_include={"at": some_datetime}` works.

    Thread-safe for recording; call the methods of one recorder from one thread.
    """

    def __init__(self) -> None:
        self.transport = RecordingTransport()
        self._owned: list[Client] = []
        # id(client) -> (client, its transport, its `send` flag) before attach.
        self._attached: dict[int, tuple[Client, Transport, bool]] = {}
        self._skip = 0  # messages before the last clear()

    def __enter__(self) -> SegmentRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- wiring ------------------------------------------------------------------------

    def client(self, write_key: str = "test-write-key", **options: Any) -> Client:
        """A new `Client` that records instead of sending; closed by `close()`.

        `options` are `Client` options (`flush_at`, `on_error`, ...), except `transport`.
        """
        if "transport" in options:
            raise TypeError("SegmentRecorder.client() sets transport itself")
        client = Client(write_key, transport=self.transport, **options)
        self._owned.append(client)
        return client

    def attach(self, client: Client) -> Client:
        """Make `client` record into this recorder instead of sending; returns it.

        Works on any `Client`, whoever created it. Also turns `send=False` off for the
        duration, so a client configured not to send in tests is still recorded.
        Messages still queued in the client at this point are recorded too. Undo with
        `detach(client)` (the fixture does it after the test).
        """
        if not isinstance(client, Client):
            raise TypeError(f"attach() needs a segment_client.Client, got {client!r}")
        if client._consumer._closing:
            raise ValueError(f"{client!r} is closed; attach it before close_and_flush()")
        if id(client) in self._attached:
            return client
        # The swap applies to the next request, including a retry of a batch in flight.
        previous = client.replace_transport(self.transport)
        self._attached[id(client)] = (client, previous, client.send)
        client.send = True
        return client

    def detach(self, client: Client) -> None:
        """Deliver what `client` queued to this recorder, then restore its transport."""
        entry = self._attached.pop(id(client), None)
        if entry is None:
            raise ValueError(f"{client!r} is not attached to this recorder")
        _, transport, send = entry
        client.flush(_FLUSH_TIMEOUT_S)
        client.replace_transport(transport)
        client.send = send

    def close(self) -> None:
        """Detach every attached client and close every client made by `client()`."""
        for client, _, _ in list(self._attached.values()):
            self.detach(client)
        owned, self._owned = self._owned, []
        for client in owned:
            client.close_and_flush(_FLUSH_TIMEOUT_S)

    def flush(self) -> bool:
        """Flush every known client; True when all of them delivered everything."""
        ok = True
        for client in [*self._owned, *(entry[0] for entry in self._attached.values())]:
            ok = client.flush(_FLUSH_TIMEOUT_S) and ok
        return ok

    def clear(self) -> None:
        """Forget what was recorded so far (after flushing it)."""
        self.flush()
        self._skip = len(self.transport.messages)

    # -- reading -----------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message recorded since the start (or `clear()`), in delivery order."""
        self.flush()
        return self.transport.messages[self._skip :]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        """The recorded messages of one type: "track", "identify", "page"..."""
        return [m for m in self.messages if m.get("type") == type_]

    @property
    def events(self) -> list[str]:
        """The names of the tracked events, in order."""
        return [m.get("event", "") for m in self.of_type("track")]

    # -- assertions --------------------------------------------------------------------

    def assert_tracked(
        self,
        event: str,
        *,
        user_id: Any = _UNSET,
        anonymous_id: Any = _UNSET,
        properties: Any = _UNSET,
        properties_include: Mapping[str, Any] | None = None,
        context_include: Mapping[str, Any] | None = None,
        integrations: Any = _UNSET,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        """Assert `event` was tracked (exactly `count` times, or at least once).

        Filters given are all required to match: `properties` is compared whole,
        `properties_include` and `context_include` only on the keys they name. Returns
        the matching messages. Raises AssertionError listing what was recorded.
        """
        __tracebackhide__ = True
        return self._assert(
            "track", count,
            event=event, userId=user_id, anonymousId=anonymous_id,
            properties=properties, integrations=integrations,
            _include={"properties": properties_include, "context": context_include},
        )

    def assert_not_tracked(self, event: str, **filters: Any) -> None:
        """Assert no tracked `event` matches (takes the filters of `assert_tracked`)."""
        __tracebackhide__ = True
        self.assert_tracked(event, count=0, **filters)

    def assert_identified(
        self,
        user_id: Any = _UNSET,
        *,
        anonymous_id: Any = _UNSET,
        traits: Any = _UNSET,
        traits_include: Mapping[str, Any] | None = None,
        context_include: Mapping[str, Any] | None = None,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        """Assert an identify call matched (exactly `count` times, or at least once)."""
        __tracebackhide__ = True
        return self._assert(
            "identify", count,
            userId=user_id, anonymousId=anonymous_id, traits=traits,
            _include={"traits": traits_include, "context": context_include},
        )

    def assert_grouped(
        self,
        group_id: Any = _UNSET,
        *,
        user_id: Any = _UNSET,
        anonymous_id: Any = _UNSET,
        traits: Any = _UNSET,
        traits_include: Mapping[str, Any] | None = None,
        context_include: Mapping[str, Any] | None = None,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        """Assert a group call matched (exactly `count` times, or at least once)."""
        __tracebackhide__ = True
        return self._assert(
            "group", count,
            groupId=group_id, userId=user_id, anonymousId=anonymous_id, traits=traits,
            _include={"traits": traits_include, "context": context_include},
        )

    def assert_paged(
        self,
        name: Any = _UNSET,
        *,
        category: Any = _UNSET,
        user_id: Any = _UNSET,
        anonymous_id: Any = _UNSET,
        properties: Any = _UNSET,
        properties_include: Mapping[str, Any] | None = None,
        context_include: Mapping[str, Any] | None = None,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        """Assert a page call matched (exactly `count` times, or at least once)."""
        __tracebackhide__ = True
        return self._assert(
            "page", count,
            name=name, category=category, userId=user_id, anonymousId=anonymous_id,
            properties=properties,
            _include={"properties": properties_include, "context": context_include},
        )

    def assert_screened(
        self,
        name: Any = _UNSET,
        *,
        category: Any = _UNSET,
        user_id: Any = _UNSET,
        anonymous_id: Any = _UNSET,
        properties: Any = _UNSET,
        properties_include: Mapping[str, Any] | None = None,
        context_include: Mapping[str, Any] | None = None,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        """Assert a screen call matched (exactly `count` times, or at least once)."""
        __tracebackhide__ = True
        return self._assert(
            "screen", count,
            name=name, category=category, userId=user_id, anonymousId=anonymous_id,
            properties=properties,
            _include={"properties": properties_include, "context": context_include},
        )

    def assert_aliased(
        self,
        previous_id: Any = _UNSET,
        user_id: Any = _UNSET,
        *,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        """Assert an alias call matched (exactly `count` times, or at least once)."""
        __tracebackhide__ = True
        return self._assert(
            "alias", count, previousId=previous_id, userId=user_id, _include={}
        )

    def assert_not_identified(self, user_id: Any = _UNSET, **filters: Any) -> None:
        """Assert no identify call matches (takes the filters of `assert_identified`)."""
        __tracebackhide__ = True
        self.assert_identified(user_id, count=0, **filters)

    def assert_not_grouped(self, group_id: Any = _UNSET, **filters: Any) -> None:
        """Assert no group call matches (takes the filters of `assert_grouped`)."""
        __tracebackhide__ = True
        self.assert_grouped(group_id, count=0, **filters)

    def assert_not_paged(self, name: Any = _UNSET, **filters: Any) -> None:
        """Assert no page call matches (takes the filters of `assert_paged`)."""
        __tracebackhide__ = True
        self.assert_paged(name, count=0, **filters)

    def assert_not_screened(self, name: Any = _UNSET, **filters: Any) -> None:
        """Assert no screen call matches (takes the filters of `assert_screened`)."""
        __tracebackhide__ = True
        self.assert_screened(name, count=0, **filters)

    def assert_not_aliased(self, previous_id: Any = _UNSET, user_id: Any = _UNSET) -> None:
        """Assert no alias call matches."""
        __tracebackhide__ = True
        self.assert_aliased(previous_id, user_id, count=0)

    def assert_no_messages(self) -> None:
        """Assert nothing at all was recorded."""
        __tracebackhide__ = True
        messages = self.messages
        if messages:
            raise AssertionError(
                f"expected no messages, {len(messages)} recorded:\n"
                + _listing(messages, {})
            )

    def _assert(
        self,
        type_: str,
        count: int | None,
        *,
        _include: Mapping[str, Mapping[str, Any] | None],
        **fields: Any,
    ) -> list[dict[str, Any]]:
        __tracebackhide__ = True
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                                  or count < 0):
            raise TypeError(f"count must be an integer >= 0 or None, got {count!r}")
        expected = {
            key: _normalise(key, value) for key, value in fields.items() if value is not _UNSET
        }
        include = {
            key: {k: _normalise("", v) for k, v in subset.items()}
            for key, subset in _include.items()
            if subset is not None
        }
        messages = self.messages
        matches = [m for m in messages if not _mismatches(m, type_, expected, include)]
        if (count is None and matches) or len(matches) == count:
            return matches
        wanted = "at least 1" if count is None else f"exactly {count}"
        described = _describe(type_, expected, include)
        raise AssertionError(
            f"expected {wanted} {described}; found {len(matches)}.\n"
            + (
                f"Recorded {len(messages)} message(s):\n"
                + _listing(messages, {"type_": type_, "expected": expected, "include": include})
                if messages
                else "Nothing was recorded (is the code under test using a client this "
                "recorder made or is attached to?)."
            )
        )


def _normalise(key: str, value: Any) -> Any:
    """Put an expected value through the wire encoding so it compares with recordings."""
    if key in ("userId", "anonymousId", "groupId", "previousId") and (
        isinstance(value, int | float) and not isinstance(value, bool)
    ):
        return str(value)
    return _as_json(value)


def _as_json(value: Any) -> Any:
    # Like the encoder, but values it does not know (mock.ANY, custom matchers with an
    # __eq__) are kept as they are so they still compare.
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {_json_key(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_as_json(item) for item in value]
    if isinstance(value, _CONVERTED):
        return _as_json(convert(value))
    return value


def _json_key(key: Any) -> Any:
    if isinstance(key, str):
        return key
    return loads(dumps({key: None})).popitem()[0]


def _mismatches(
    message: Mapping[str, Any],
    type_: str,
    expected: Mapping[str, Any],
    include: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """Why `message` does not match (empty when it does)."""
    if message.get("type") != type_:
        return ["type"]
    reasons = [
        f"{key}={message.get(key)!r}"
        for key, value in expected.items()
        if value != message.get(key)  # expected on the left, so mock.ANY works
    ]
    for key, subset in include.items():
        actual = message.get(key) or {}
        for name, value in subset.items():
            if name not in actual:
                reasons.append(f"{key}[{name!r}] missing")
            elif value != actual[name]:
                reasons.append(f"{key}[{name!r}]={actual[name]!r}")
    return reasons


def _describe(
    type_: str, expected: Mapping[str, Any], include: Mapping[str, Mapping[str, Any]]
) -> str:
    parts = [f"{key}={value!r}" for key, value in expected.items()]
    parts += [f"{key} including {subset!r}" for key, subset in include.items() if subset]
    return f"{type_} message" + (" with " + ", ".join(parts) if parts else "")


def _summary(message: Mapping[str, Any]) -> str:
    type_ = str(message.get("type"))
    parts = [type_]
    if type_ in _KEY_FIELD:
        parts.append(repr(message.get(_KEY_FIELD[type_][1])))
    for key in ("userId", "anonymousId"):
        if key in message:
            parts.append(f"{key}={message[key]!r}")
    payload = _PAYLOAD_KEY.get(type_)
    if payload is not None:
        parts.append(f"{payload}={message.get(payload, {})!r}")
    text = " ".join(parts)
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 3] + "..."


def _listing(messages: Sequence[Mapping[str, Any]], query: Mapping[str, Any]) -> str:
    lines = []
    for number, message in enumerate(messages, 1):
        line = f"  {number}. {_summary(message)}"
        if query and message.get("type") == query["type_"]:
            reasons = _mismatches(message, query["type_"], query["expected"], query["include"])
            line += f"   <- differs: {', '.join(reasons)}" if reasons else "   <- matches"
        lines.append(line)
    return "\n".join(lines)
