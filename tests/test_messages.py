"""Message building and validation for the six calls."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from segment_client import Client, MessageError, MessageTooLargeError, context_defaults
from segment_client.testing import RecordingTransport

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LIBRARY = {"name": "segment-client-python"}


@pytest.fixture(name="client")
def _client(make_client: Any) -> Client:
    return make_client()  # type: ignore[no-any-return]


def sent(client: Client, transport: RecordingTransport) -> list[dict[str, Any]]:
    assert client.flush(5)
    return transport.messages


class TestShapes:
    def test_track(self, client: Client, transport: RecordingTransport) -> None:
        """track sends event, properties, ids, stamps and the library context."""
        mid = client.track("user-1", "Order Completed", {"revenue": 59.99})
        [msg] = sent(client, transport)
        assert msg["type"] == "track"
        assert msg["messageId"] == mid
        assert msg["userId"] == "user-1"
        assert "anonymousId" not in msg
        assert msg["event"] == "Order Completed"
        assert msg["properties"] == {"revenue": 59.99}
        assert msg["integrations"] == {}
        assert TS.match(msg["timestamp"])
        assert msg["context"]["library"]["name"] == LIBRARY["name"]
        assert msg["context"]["library"]["version"]

    def test_keyword_form(self, client: Client, transport: RecordingTransport) -> None:
        """All keyword parameters of track land in their wire fields."""
        client.track(
            user_id=None, event="Signed Up", properties={"plan": "pro"},
            context={"ip": "1.2.3.4"}, timestamp=dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
            anonymous_id="anon-1", integrations={"All": False, "Mixpanel": True},
            message_id="fixed-id",
        )
        [msg] = sent(client, transport)
        assert msg["anonymousId"] == "anon-1"
        assert "userId" not in msg
        assert msg["messageId"] == "fixed-id"
        assert msg["timestamp"] == "2024-05-06T07:08:09.123Z"
        assert msg["context"]["ip"] == "1.2.3.4"
        assert msg["integrations"] == {"All": False, "Mixpanel": True}

    def test_identify(self, client: Client, transport: RecordingTransport) -> None:
        client.identify("u", {"email": "a@b.c"})
        [msg] = sent(client, transport)
        assert (msg["type"], msg["userId"], msg["traits"]) == ("identify", "u", {"email": "a@b.c"})

    def test_group(self, client: Client, transport: RecordingTransport) -> None:
        client.group("u", "g-1", {"name": "Acme"})
        [msg] = sent(client, transport)
        assert (msg["type"], msg["groupId"], msg["traits"]) == ("group", "g-1", {"name": "Acme"})

    @pytest.mark.parametrize("kind", ["page", "screen"])
    def test_page_and_screen(
        self, client: Client, transport: RecordingTransport, kind: str
    ) -> None:
        getattr(client, kind)("u", "Docs", "Quickstart", {"path": "/q"})
        [msg] = sent(client, transport)
        assert msg["type"] == kind
        assert (msg["category"], msg["name"], msg["properties"]) == (
            "Docs", "Quickstart", {"path": "/q"}
        )

    def test_alias(self, client: Client, transport: RecordingTransport) -> None:
        client.alias("anon-1", "user-1")
        [msg] = sent(client, transport)
        assert (msg["type"], msg["previousId"], msg["userId"]) == ("alias", "anon-1", "user-1")

    def test_numeric_ids_become_strings(
        self, client: Client, transport: RecordingTransport
    ) -> None:
        client.track(157963456373623802, "E", anonymous_id=7)
        client.group(1, 42)
        msgs = sent(client, transport)
        assert msgs[0]["userId"] == "157963456373623802"
        assert msgs[0]["anonymousId"] == "7"
        assert msgs[1]["groupId"] == "42"

    def test_unique_message_ids(self, client: Client, transport: RecordingTransport) -> None:
        ids = {client.track("u", "E") for _ in range(500)}
        assert len(ids) == 500
        assert {m["messageId"] for m in sent(client, transport)} == ids


class TestCallerDataUntouched:
    def test_dicts_not_mutated(self, client: Client, transport: RecordingTransport) -> None:
        """The library never writes into the caller's dicts."""
        context = {"ip": "1.2.3.4"}
        properties = {"a": 1}
        client.track("u", "E", properties, context=context)
        assert context == {"ip": "1.2.3.4"}
        assert properties == {"a": 1}

    def test_later_mutation_not_sent(
        self, client: Client, transport: RecordingTransport
    ) -> None:
        """What is sent is frozen at the call."""
        properties: dict[str, Any] = {"items": [1]}
        client.track("u", "E", properties)
        properties["items"].append(2)
        properties["late"] = True
        [msg] = sent(client, transport)
        assert msg["properties"] == {"items": [1]}

    def test_library_overrides_caller(
        self, client: Client, transport: RecordingTransport
    ) -> None:
        client.track("u", "E", context={"library": {"name": "x"}})
        [msg] = sent(client, transport)
        assert msg["context"]["library"]["name"] == LIBRARY["name"]


class TestTimestamps:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (dt.datetime(2024, 1, 2, 3, 4, 5, 678901), "2024-01-02T03:04:05.678Z"),
            (
                dt.datetime(2024, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
                "2024-01-02T03:04:05.000Z",
            ),
            ("2024-01-02T03:04:05+01:00", "2024-01-02T02:04:05.000Z"),
            ("2024-01-02", "2024-01-02T00:00:00.000Z"),
            (dt.date(2024, 1, 2), "2024-01-02T00:00:00.000Z"),
        ],
    )
    def test_formats(
        self, client: Client, transport: RecordingTransport, value: Any, expected: str
    ) -> None:
        """Naive datetimes are UTC; aware ones are converted; strings are parsed."""
        client.track("u", "E", timestamp=value)
        assert sent(client, transport)[0]["timestamp"] == expected

    def test_default_is_now(self, client: Client, transport: RecordingTransport) -> None:
        before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        client.track("u", "E")
        stamp = sent(client, transport)[0]["timestamp"]
        parsed = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=dt.timezone.utc
        )
        assert before <= parsed <= dt.datetime.now(dt.timezone.utc)


class TestValidation:
    @pytest.mark.parametrize(
        ("call", "field"),
        [
            (lambda c: c.track(None, "E"), "user_id or anonymous_id"),
            (lambda c: c.track("", "E", anonymous_id=""), "user_id or anonymous_id"),
            (lambda c: c.track("u"), "event"),
            (lambda c: c.track("u", 5), "event"),
            (lambda c: c.track("u", ""), "event"),
            (lambda c: c.track("u", "E", [1]), "properties"),
            (lambda c: c.track("u", "E", context="x"), "context"),
            (lambda c: c.track("u", "E", integrations=[]), "integrations"),
            (lambda c: c.track(["u"], "E"), "user_id"),
            (lambda c: c.track(True, "E"), "user_id"),
            (lambda c: c.track("u", "E", anonymous_id=object()), "anonymous_id"),
            (lambda c: c.track("u", "E", timestamp="not a date"), "timestamp"),
            (lambda c: c.track("u", "E", timestamp=[1]), "timestamp"),
            (lambda c: c.track("u", "E", message_id=["x"]), "message_id"),
            (lambda c: c.track("u", "E", message_id="x" * 101), "message_id"),
            (lambda c: c.identify(None, {"a": 1}), "user_id or anonymous_id"),
            (lambda c: c.identify("u", "traits"), "traits"),
            (lambda c: c.group("u"), "group_id"),
            (lambda c: c.group("u", None), "group_id"),
            (lambda c: c.group("u", "g", 3), "traits"),
            (lambda c: c.group(None, "g"), "user_id or anonymous_id"),
            (lambda c: c.page("u", name=5), "name"),
            (lambda c: c.page("u", category=5), "category"),
            (lambda c: c.page(None, name="Home"), "user_id or anonymous_id"),
            (lambda c: c.screen("u", properties=1), "properties"),
            (lambda c: c.alias(None, "u"), "previous_id"),
            (lambda c: c.alias("p", None), "user_id"),
        ],
    )
    def test_errors_name_the_field(
        self, client: Client, transport: RecordingTransport, call: Any, field: str
    ) -> None:
        """Each bad argument raises MessageError naming the field; nothing is queued."""
        with pytest.raises(MessageError, match=re.escape(field)):
            call(client)
        assert client.flush(5)
        assert transport.messages == []
        assert client.stats().queued == 0

    def test_message_error_is_value_error(self, client: Client) -> None:
        with pytest.raises(ValueError, match="event"):
            client.track("u", None)

    def test_too_large(self, client: Client, transport: RecordingTransport) -> None:
        """A message over 32 KB encoded is rejected at the call and never sent."""
        with pytest.raises(MessageTooLargeError) as info:
            client.track("u", "Big", {"blob": "x" * 33_000})
        assert info.value.size > 32 * 1024
        assert "32768" in str(info.value)
        client.track("u", "Small")
        msgs = sent(client, transport)
        assert [m["event"] for m in msgs] == ["Small"]

    def test_size_is_measured_in_utf8_bytes(self, client: Client) -> None:
        """Multi-byte characters count by their encoded size."""
        with pytest.raises(MessageTooLargeError):
            client.track("u", "E", {"s": "é" * 16_500})  # 16.5k chars, 33k bytes


class TestContextDefaults:
    def test_defaults_fill_ids_and_merge_context(
        self, client: Client, transport: RecordingTransport
    ) -> None:
        """Per-request defaults fill missing ids; the caller's context keys win."""
        with context_defaults(anonymous_id="anon", context={"ip": "9.9.9.9", "locale": "fr"}):
            client.track(event="E", context={"ip": "1.1.1.1"})
            client.track("u", "F")
        client.track("v", "G")
        a, b, c = sent(client, transport)
        assert a["anonymousId"] == "anon" and "userId" not in a
        assert a["context"]["ip"] == "1.1.1.1" and a["context"]["locale"] == "fr"
        assert b["userId"] == "u" and b["anonymousId"] == "anon"
        assert "anonymousId" not in c and "ip" not in c["context"]
