"""What a validated track() costs against an unvalidated one (and what middleware costs).

    .venv/bin/python bench/plan_cost.py

Each variant calls `client.track()` on a client with `send=False` (builds, validates,
encodes and counts the message; no queue, no network), so the numbers are the caller's
cost per call. CPU time (`time.process_time`), best of 7 rounds with the variants
interleaved, so a busy shared machine disturbs the comparison less. Microseconds per call.
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segment_client import Client, redact_pii, static_context

PLAN = Path(__file__).parent.parent / "tests" / "plans" / "native_shop.json"
# "Order Completed" in the plan: 18 schema nodes (nested objects, an array of objects,
# pattern, enum, bounds, additionalProperties false).
RICH: dict[str, Any] = {
    "order_id": "o-1234",
    "revenue": 59.99,
    "currency": "USD",
    "products": [
        {"sku": "ABC-1", "price": 19.99, "quantity": 1},
        {"sku": "ABC-2", "price": 40.0, "quantity": 2},
    ],
    "shipping": {"method": "express", "address": {"country": "DE", "city": "Berlin"}},
}
# "Product Viewed": two typed properties, additionalProperties false.
SIMPLE: dict[str, Any] = {"sku": "ABC-1", "position": 3}
NUMBER = 5_000
ROUNDS = 7


def _plain() -> Client:
    return Client("k", send=False)


def _planned() -> Client:
    return Client("k", send=False, tracking_plan=PLAN, on_violation="raise")


def _middleware(consumer_side: bool) -> Callable[[], Client]:
    def make() -> Client:
        client = Client("k", send=False)
        client.add_middleware(
            static_context(app_version="1.4.2", environment="production"),
            consumer_side=consumer_side,
        )
        client.add_middleware(redact_pii(drop=["password"]), consumer_side=consumer_side)
        return client

    return make


VARIANTS: list[tuple[str, Callable[[], Client], str, dict[str, Any]]] = [
    ("simple event, no plan", _plain, "Product Viewed", SIMPLE),
    ("simple event, validated", _planned, "Product Viewed", SIMPLE),
    ("rich event, no plan", _plain, "Order Completed", RICH),
    ("rich event, validated", _planned, "Order Completed", RICH),
    ("rich event, caller-side middleware x2", _middleware(False), "Order Completed", RICH),
    ("rich event, consumer-side middleware x2", _middleware(True), "Order Completed", RICH),
]


def main() -> None:
    clients = [make() for _, make, _, _ in VARIANTS]
    best = [float("inf")] * len(VARIANTS)
    try:
        for _ in range(ROUNDS):
            for index, (client, (_, _, event, props)) in enumerate(
                zip(clients, VARIANTS, strict=True)
            ):
                def call(client: Client = client, event: str = event,
                         props: dict[str, Any] = props) -> None:
                    client.track("user-1", event, props)

                took = timeit.timeit(call, number=NUMBER, timer=time.process_time)
                best[index] = min(best[index], took / NUMBER * 1e6)
    finally:
        for client in clients:
            client.close_and_flush(5)
    for (name, _, _, _), cost in zip(VARIANTS, best, strict=True):
        print(f"{name:42s} {cost:7.2f} us/call")


if __name__ == "__main__":
    main()
