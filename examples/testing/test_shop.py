"""Tests of shop.py's tracking, with the segment_recorder fixture."""

from unittest import mock

import shop


def test_order_completed_is_tracked_once(segment_recorder):
    shop.complete_order("user-1", "o-1", [{"price": 20.0}, {"price": 5.5}])

    segment_recorder.assert_tracked(
        "Order Completed",
        user_id="user-1",
        properties_include={"revenue": 25.5, "products": 2},
        count=1,
    )
    segment_recorder.assert_not_tracked("Order Refunded")


def test_big_orders_mark_the_user(segment_recorder):
    shop.complete_order("user-2", "o-2", [{"price": 150.0}])

    segment_recorder.assert_identified("user-2", traits={"big_spender": True}, count=1)
    assert segment_recorder.events == ["Order Completed"]


def test_order_id_is_whatever_the_order_has(segment_recorder):
    shop.complete_order("user-3", "o-3", [{"price": 1.0}])

    [message] = segment_recorder.assert_tracked(
        "Order Completed", properties_include={"order_id": mock.ANY}
    )
    assert message["properties"]["order_id"] == "o-3"


def test_a_client_of_your_own(segment_recorder):
    client = segment_recorder.client()  # closed after the test
    client.page("user-4", "Shop", "Cart")

    segment_recorder.assert_paged("Cart", category="Shop", user_id="user-4", count=1)
