"""SegmentRecorder: wiring (client factory, attach/detach) and every assertion."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from unittest import mock

import pytest

from segment_client import Client, HTTPTransport
from segment_client.testing import SegmentRecorder


@pytest.fixture(name="recorder")
def _recorder() -> Iterator[SegmentRecorder]:
    with SegmentRecorder() as recorder:
        yield recorder


@pytest.fixture(name="app_client")
def _app_client() -> Iterator[Client]:
    """A client as an application would configure it: a real transport, not sending."""
    client = Client("app-key", host="http://127.0.0.1:9", send=False)
    yield client
    client.close_and_flush(5)


class TestWiring:
    def test_client_factory_records_and_is_closed(self, recorder: SegmentRecorder) -> None:
        """client() records every call; close() closes the clients it made."""
        client = recorder.client(flush_at=1)
        client.track("u", "A")
        client.identify("u", {"plan": "pro"})
        assert [m["type"] for m in recorder.messages] == ["track", "identify"]
        recorder.close()
        client.track("u", "After")
        assert client.stats().dropped == {"closed": 1}

    def test_client_factory_refuses_a_transport(self, recorder: SegmentRecorder) -> None:
        """The recorder owns the transport of the clients it makes."""
        with pytest.raises(TypeError, match="sets transport itself"):
            recorder.client(transport=HTTPTransport("k", url="http://127.0.0.1:9"))

    def test_attach_records_and_detach_restores(
        self, recorder: SegmentRecorder, app_client: Client
    ) -> None:
        """attach() records a send=False client; detach() gives back transport and flag."""
        original = app_client._consumer.sender.transport
        assert recorder.attach(app_client) is app_client
        app_client.track("user-1", "Signed Up")
        recorder.assert_tracked("Signed Up", user_id="user-1", count=1)
        recorder.detach(app_client)
        assert app_client._consumer.sender.transport is original
        assert app_client.send is False
        app_client.track("user-1", "Not recorded")
        assert recorder.events == ["Signed Up"]

    def test_detach_delivers_queued_messages_to_the_recorder(
        self, recorder: SegmentRecorder, app_client: Client
    ) -> None:
        """Messages queued before detach() are recorded, not sent on the real transport."""
        recorder.attach(app_client)
        for n in range(5):
            app_client.track("u", f"E{n}")
        recorder.detach(app_client)
        assert len(recorder.transport.messages) == 5
        assert app_client.stats().delivered == 5

    def test_attach_sync_mode_client(self, recorder: SegmentRecorder) -> None:
        """A sync_mode client records within the call itself."""
        client = Client("k", host="http://127.0.0.1:9", sync_mode=True)
        try:
            recorder.attach(client)
            client.page("u", "Docs", "Home")
            assert len(recorder.transport.messages) == 1
            recorder.assert_paged("Home", category="Docs", user_id="u")
        finally:
            recorder.detach(client)
            client.close_and_flush(5)

    def test_attach_rejects_closed_and_non_clients(self, recorder: SegmentRecorder) -> None:
        """A closed client, or something that is not a Client, is a clear error."""
        client = Client("k", host="http://127.0.0.1:9")
        client.close_and_flush(5)
        with pytest.raises(ValueError, match="is closed"):
            recorder.attach(client)
        with pytest.raises(TypeError, match=r"needs a segment_client\.Client"):
            recorder.attach(object())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="not attached"):
            recorder.detach(client)

    def test_clear_forgets_earlier_messages(self, recorder: SegmentRecorder) -> None:
        """clear() starts a fresh recording; earlier messages no longer match."""
        client = recorder.client()
        client.track("u", "Before")
        recorder.clear()
        client.track("u", "After")
        assert recorder.events == ["After"]
        recorder.assert_not_tracked("Before")


class TestAssertions:
    def test_every_call_type(self, recorder: SegmentRecorder) -> None:
        """Each assertion finds its own message type and returns the matches."""
        client = recorder.client()
        client.identify("u1", {"email": "a@example.com", "plan": "pro"})
        client.track("u1", "Order Completed", {"revenue": 59.99, "currency": "USD"})
        client.group("u1", "g1", {"name": "Acme"})
        client.page("u1", "Docs", "Quickstart", {"path": "/docs"})
        client.screen(None, "App", "Home", anonymous_id="anon-1")
        client.alias("anon-1", "u1")
        [identify] = recorder.assert_identified("u1", traits_include={"plan": "pro"}, count=1)
        assert identify["traits"]["email"] == "a@example.com"
        recorder.assert_tracked(
            "Order Completed", user_id="u1",
            properties={"revenue": 59.99, "currency": "USD"}, count=1,
        )
        recorder.assert_grouped("g1", user_id="u1", traits={"name": "Acme"}, count=1)
        recorder.assert_paged("Quickstart", category="Docs", properties_include={"path": "/docs"})
        recorder.assert_screened("Home", anonymous_id="anon-1", count=1)
        recorder.assert_aliased("anon-1", "u1", count=1)
        assert recorder.events == ["Order Completed"]
        assert [m["type"] for m in recorder.of_type("page")] == ["page"]

    def test_expected_values_are_encoded_like_the_wire(self, recorder: SegmentRecorder) -> None:
        """Numeric ids, datetimes, Decimals and tuples compare as what is sent."""
        when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
        client = recorder.client()
        client.track(42, "Paid", {"at": when, "amount": Decimal("9.5"), "tags": ("a", "b")})
        recorder.assert_tracked(
            "Paid", user_id=42,
            properties={"at": when, "amount": Decimal("9.5"), "tags": ("a", "b")},
        )

    def test_mock_any_matches_anything(self, recorder: SegmentRecorder) -> None:
        """unittest.mock.ANY works as a wildcard, at the top level and inside includes."""
        recorder.client().track("u", "Viewed", {"id": "x-1", "n": 3})
        recorder.assert_tracked("Viewed", user_id=mock.ANY, properties_include={"id": mock.ANY})

    def test_context_include_and_missing_keys(self, recorder: SegmentRecorder) -> None:
        """context_include checks only the keys it names; a missing key is reported."""
        recorder.client().track("u", "Viewed", context={"ip": "10.0.0.1"})
        recorder.assert_tracked("Viewed", context_include={"ip": "10.0.0.1"})
        with pytest.raises(AssertionError, match=r"differs: properties\['sku'\] missing"):
            recorder.assert_tracked("Viewed", properties_include={"sku": "A"})

    def test_count_zero_and_not_tracked(self, recorder: SegmentRecorder) -> None:
        """assert_not_tracked passes when absent and fails, with a listing, when present."""
        recorder.client().track("u", "Viewed")
        recorder.assert_not_tracked("Deleted")
        with pytest.raises(AssertionError, match=r"expected exactly 0 .* found 1"):
            recorder.assert_not_tracked("Viewed", user_id="u")

    def test_nothing_recorded_says_so(self, recorder: SegmentRecorder) -> None:
        """With no messages, the failure hints at the usual cause: an unattached client."""
        recorder.assert_no_messages()
        with pytest.raises(AssertionError, match="Nothing was recorded"):
            recorder.assert_identified("u")

    def test_assert_no_messages_lists_them(self, recorder: SegmentRecorder) -> None:
        """assert_no_messages fails listing what was recorded."""
        recorder.client().alias("a", "b")
        with pytest.raises(AssertionError, match=r"1\. alias 'a' userId='b'"):
            recorder.assert_no_messages()

    def test_bad_count_is_a_type_error(self, recorder: SegmentRecorder) -> None:
        """count must be a non-negative integer or None."""
        with pytest.raises(TypeError, match="count must be"):
            recorder.assert_tracked("x", count=-1)
        with pytest.raises(TypeError, match="count must be"):
            recorder.assert_tracked("x", count=True)

    def test_long_payloads_are_truncated(self, recorder: SegmentRecorder) -> None:
        """Listings stay one line per message, whatever the payload."""
        recorder.client().track("u", "Big", {"blob": "x" * 1000})
        with pytest.raises(AssertionError) as info:
            recorder.assert_tracked("Other")
        listing = str(info.value).splitlines()[-1]
        assert listing.endswith("...   <- differs: event='Big'")
        assert len(listing) < 220


class TestNegativeAssertions:
    """assert_not_* exists for every call type and fails naming what matched."""

    @staticmethod
    def send_one_of_each(recorder: SegmentRecorder) -> Client:
        """identify, group, page, screen and alias through a recorder client."""
        client = recorder.client()
        client.identify("user-1", {"plan": "pro"})
        client.group("user-1", "acme")
        client.page("user-1", "Docs", "Install")
        client.screen("user-1", "App", "Home")
        client.alias("anon-1", "user-1")
        return client

    def test_each_passes_when_nothing_matches(self, recorder: SegmentRecorder) -> None:
        client = self.send_one_of_each(recorder)
        client.track("user-1", "Signed Up")
        recorder.assert_not_identified("user-2")
        recorder.assert_not_identified("user-1", traits_include={"plan": "free"})
        recorder.assert_not_grouped("other")
        recorder.assert_not_paged("Pricing")
        recorder.assert_not_paged("Install", category="Blog")
        recorder.assert_not_screened("Settings")
        recorder.assert_not_aliased("anon-2")
        recorder.assert_not_aliased(user_id="user-2")
        recorder.assert_not_tracked("Signed Out")

    @pytest.mark.parametrize(
        ("check", "expected"),
        [
            (lambda r: r.assert_not_identified("user-1"), "exactly 0 identify message"),
            (lambda r: r.assert_not_grouped("acme"), "exactly 0 group message"),
            (lambda r: r.assert_not_paged("Install"), "exactly 0 page message"),
            (lambda r: r.assert_not_screened("Home"), "exactly 0 screen message"),
            (lambda r: r.assert_not_aliased("anon-1", "user-1"), "exactly 0 alias message"),
            (lambda r: r.assert_not_identified(), "exactly 0 identify message; found 1"),
        ],
    )
    def test_each_fails_when_one_matches(
        self, recorder: SegmentRecorder, check: object, expected: str
    ) -> None:
        self.send_one_of_each(recorder)
        with pytest.raises(AssertionError, match=expected):
            check(recorder)  # type: ignore[operator]
