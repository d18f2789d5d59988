"""A small application module with its own process-wide client, as most apps have."""

import os

from segment_client import Client

# Without a write key (development, CI) the client validates and encodes every call but
# sends nothing; tests record it with the segment_recorder fixture.
client = Client(
    os.environ.get("SEGMENT_WRITE_KEY", "no-key"),
    send="SEGMENT_WRITE_KEY" in os.environ,
)


def get_client() -> Client:
    """The client this app uses (what the segment_client_attach ini option names)."""
    return client


def complete_order(user_id: str, order_id: str, items: list[dict[str, float]]) -> None:
    revenue = round(sum(item["price"] for item in items), 2)
    client.track(
        user_id,
        "Order Completed",
        {"order_id": order_id, "revenue": revenue, "products": len(items)},
    )
    if revenue >= 100:
        client.identify(user_id, {"big_spender": True})
