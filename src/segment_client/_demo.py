"""The `segment-client demo` stream: a realistic, seeded sequence of calls.

Pure data: `demo_stream(seed, users)` yields (method, kwargs) pairs that a `Client`
can replay. Deterministic for a given seed, so tests can predict every count.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

__all__ = ["demo_stream"]

_FIRST = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Radia", "Edsger",
          "Frances", "Dennis", "Hedy"]
_LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Thompson",
         "Perlman", "Dijkstra", "Allen", "Ritchie", "Lamarr"]
_COMPANIES = [("acme", "Acme Corp", "Manufacturing"), ("globex", "Globex", "Energy"),
              ("initech", "Initech", "Software")]
_PAGES = [("Home", "/"), ("Pricing", "/pricing"), ("Docs", "/docs"), ("Blog", "/blog"),
          ("Product", "/product")]
_PRODUCTS = [("sku-tee", "T-shirt", 19.0), ("sku-mug", "Mug", 12.5),
             ("sku-hoodie", "Hoodie", 49.0), ("sku-cap", "Cap", 15.0)]
_FEATURES = ["Dashboard", "Export", "Search", "Alerts"]


def _user_calls(rng: random.Random, index: int, start: dt.datetime) -> list[dict[str, Any]]:
    user_id = f"user-{index + 1:03d}"
    anonymous_id = f"anon-{rng.getrandbits(48):012x}"
    first, last = _FIRST[index % len(_FIRST)], _LAST[index % len(_LAST)]
    slug, company, industry = _COMPANIES[index % len(_COMPANIES)]
    plan = rng.choice(["free", "pro", "team"])
    calls: list[dict[str, Any]] = []

    def page(name: str, path: str, **ids: str) -> None:
        calls.append({"method": "page", "name": name, "category": "Website",
                      "properties": {"path": path, "url": f"https://example.com{path}",
                                     "title": f"{name} | Example"}, **ids})

    for name, path in rng.sample(_PAGES, 2):  # browsing before signing up
        page(name, path, anonymous_id=anonymous_id)
    calls.append({"method": "track", "event": "Signed Up", "anonymous_id": anonymous_id,
                  "user_id": user_id, "properties": {"plan": plan, "method": "email"}})
    calls.append({"method": "identify", "user_id": user_id, "anonymous_id": anonymous_id,
                  "traits": {"name": f"{first} {last}",
                             "email": f"{first.lower()}@{slug}.example", "plan": plan,
                             "company": company}})
    calls.append({"method": "group", "user_id": user_id, "group_id": slug,
                  "traits": {"name": company, "industry": industry,
                             "employees": 50 + 100 * (index % 5)}})
    for _ in range(rng.randint(3, 5)):  # sessions
        for name, path in rng.sample(_PAGES, rng.randint(1, 3)):
            page(name, path, user_id=user_id)
        for _ in range(rng.randint(1, 3)):
            calls.append({"method": "track", "event": "Feature Used", "user_id": user_id,
                          "properties": {"feature": rng.choice(_FEATURES)}})
        sku, product, price = rng.choice(_PRODUCTS)
        calls.append({"method": "track", "event": "Product Viewed", "user_id": user_id,
                      "properties": {"product_id": sku, "name": product, "price": price}})
        if rng.random() < 0.6:
            quantity = rng.randint(1, 3)
            calls.append({"method": "track", "event": "Product Added", "user_id": user_id,
                          "properties": {"product_id": sku, "price": price,
                                         "quantity": quantity}})
            if rng.random() < 0.7:
                order = f"order-{rng.getrandbits(32):08x}"
                total = round(price * quantity, 2)
                calls.append({"method": "track", "event": "Checkout Started",
                              "user_id": user_id,
                              "properties": {"order_id": order, "value": total}})
                calls.append({"method": "track", "event": "Order Completed",
                              "user_id": user_id,
                              "properties": {"order_id": order, "revenue": total,
                                             "currency": "USD",
                                             "products": [{"product_id": sku,
                                                           "quantity": quantity}]}})
    when = start + dt.timedelta(seconds=rng.randint(0, 600))
    for call in calls:
        when += dt.timedelta(seconds=rng.randint(5, 90))
        call["timestamp"] = when
    return calls


def demo_stream(seed: int = 7, users: int = 8) -> Iterator[tuple[str, dict[str, Any]]]:
    """(method, kwargs) for every call of the demo, interleaved across users by time."""
    rng = random.Random(seed)
    start = dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.timezone.utc)
    calls = [call for index in range(users) for call in _user_calls(rng, index, start)]
    calls.sort(key=lambda call: call["timestamp"])
    for call in calls:
        kwargs = dict(call)
        yield kwargs.pop("method"), kwargs
