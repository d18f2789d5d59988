"""What a validated track() costs against an unvalidated one (and what middleware costs).

    PYTHONPATH=src .venv/bin/python bench/plan_cost.py [--rounds N] [--number N]
    PYTHONPATH=src .venv/bin/python bench/plan_cost.py --profile rich

Each variant calls `client.track()` on a client with `send=False` (builds, validates,
encodes and counts the message; no queue, no network), so the numbers are the caller's
cost per call. CPU time (`time.process_time`) per round, the variants interleaved within
a round so that a busy shared machine disturbs the comparison less; the median over the
rounds is printed. "added" is the median over the rounds of (validated - unvalidated) in
the same round: what the tracking plan adds to a call.

The rich event is the benchmark's (`bench/worker.py` sends it, checked against
`bench/plan.json`: every property typed, nested objects and arrays); the two-property
event is `Product Viewed` in the same plan. "interpreter" variants force the closure
interpreter instead of the generated validators, to compare the two in one run.
`--profile rich|simple` prints a cProfile of the validated variant instead. `--floor`
adds the rich event with a hand-written validator of its valid case (a lower bound for
Python code) and with a validator that accepts everything (what the enforcement around
the check costs), and times each validator alone.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import pstats
import re
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segment_client import Client, load_plan, redact_pii, static_context

sys.path.insert(0, str(Path(__file__).resolve().parent))
from worker import PLAN, make_properties

RICH: dict[str, Any] = make_properties(7)
RICH_EVENT = "Order Completed"
# Two typed properties, additionalProperties false.
SIMPLE: dict[str, Any] = {"sku": "ABC-1", "position": 3}
SIMPLE_EVENT = "Product Viewed"


def _plain() -> Client:
    return Client("k", send=False)


def _planned(
    interpreted: bool = False, rich: Callable[[Any], bool] | None = None
) -> Callable[[], Client]:
    """A client validating against bench/plan.json; `interpreted`: every rule without its
    generated validator; `rich`: another validator for the rich event's rule."""
    def make() -> Client:
        plan = load_plan(PLAN)
        if interpreted:
            for rule in plan.rules:
                rule.valid = None
        if rich is not None:
            plan.track_rules[RICH_EVENT].valid = rich
        return Client("k", send=False, tracking_plan=plan, on_violation="raise")

    return make


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


Variant = tuple[str, Callable[[], Client], str, dict[str, Any]]


def _always_valid(message: Any) -> bool:
    return True


def variants(interpreter: bool, floor: bool) -> list[Variant]:
    out: list[Variant] = [
        ("simple event, no plan", _plain, SIMPLE_EVENT, SIMPLE),
        ("simple event, validated", _planned(), SIMPLE_EVENT, SIMPLE),
        ("rich event, no plan", _plain, RICH_EVENT, RICH),
        ("rich event, validated", _planned(), RICH_EVENT, RICH),
    ]
    if interpreter:
        out += [
            ("simple event, validated (interpreter)", _planned(True), SIMPLE_EVENT, SIMPLE),
            ("rich event, validated (interpreter)", _planned(True), RICH_EVENT, RICH),
        ]
    if floor:
        out += [
            ("rich event, validated (hand-written)", _planned(rich=_hand_written), RICH_EVENT,
             RICH),
            ("rich event, validated (always valid)", _planned(rich=_always_valid), RICH_EVENT,
             RICH),
        ]
    out += [
        ("rich event, caller-side middleware x2", _middleware(False), RICH_EVENT, RICH),
        ("rich event, consumer-side middleware x2", _middleware(True), RICH_EVENT, RICH),
    ]
    return out


def measure(chosen: list[Variant], rounds: int, number: int) -> list[list[float]]:
    """Microseconds per call, one list of rounds per variant."""
    clients = [make() for _, make, _, _ in chosen]
    runs: list[list[float]] = [[] for _ in chosen]
    try:
        for _ in range(rounds):
            for index, (client, (_, _, event, props)) in enumerate(
                zip(clients, chosen, strict=True)
            ):
                def call(client: Client = client, event: str = event,
                         props: dict[str, Any] = props) -> None:
                    client.track("user-1", event, props)

                took = timeit.timeit(call, number=number, timer=time.process_time)
                runs[index].append(took / number * 1e6)
    finally:
        for client in clients:
            client.close_and_flush(5)
    return runs


def profile(which: str, number: int) -> None:
    event, props = (RICH_EVENT, RICH) if which == "rich" else (SIMPLE_EVENT, SIMPLE)
    client = _planned()()
    try:
        for _ in range(1000):  # warm up
            client.track("user-1", event, props)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(number):
            client.track("user-1", event, props)
        profiler.disable()
    finally:
        client.close_and_flush(5)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


_ORDER_ID = re.compile(r"^ord-[0-9]+$").match
_ZIP = re.compile(r"^[0-9]{5}$").match
_CURRENCIES = frozenset({"USD", "EUR", "GBP"})
_METHODS = frozenset({"standard", "express"})


def _hand_written(message: dict[str, Any]) -> bool:
    """The rich event's rule written by hand for the valid case only (no fallbacks, every
    property assumed present): a lower bound for a validator in Python."""
    p = message["properties"]
    if p.__class__ is not dict:
        return False
    v = p["order_id"]
    if v.__class__ is not str or _ORDER_ID(v) is None:
        return False
    v = p["revenue"]
    if (v.__class__ is not float and v.__class__ is not int) or v < 0:
        return False
    if p["currency"] not in _CURRENCIES:
        return False
    v = p.get("quantity")
    if v.__class__ is not int or v < 1:
        return False
    v = p.get("coupon")
    if (v.__class__ is not str and v is not None) or p.get("is_gift").__class__ is not bool:
        return False
    if p.get("paid_at").__class__ is not dt.datetime:
        return False
    v = p.get("tags")
    if v.__class__ is not list or len(v) > 20:
        return False
    for tag in v:
        if tag.__class__ is not str:
            return False
    for item in p.get("items"):
        if item.__class__ is not dict or item["sku"].__class__ is not str:
            return False
        if item.get("name").__class__ is not str:
            return False
        v = item.get("price")
        if (v.__class__ is not float and v.__class__ is not int) or v < 0:
            return False
        v = item.get("quantity")
        if v.__class__ is not int or v < 1:
            return False
    shipping = p.get("shipping")
    if shipping.__class__ is not dict or shipping.get("method") not in _METHODS:
        return False
    address = shipping.get("address")
    if address.__class__ is not dict or address.get("city").__class__ is not str:
        return False
    v = address.get("zip")
    return v.__class__ is str and _ZIP(v) is not None


def floor(rounds: int, number: int) -> None:
    """The rich event's validator alone: generated, hand-written, interpreter."""
    rule = load_plan(PLAN).track_rules[RICH_EVENT]
    message = {"type": "track", "event": RICH_EVENT, "properties": RICH}
    assert rule.valid is not None and rule.check is not None
    assert rule.valid(message) and _hand_written(message) and not rule.check(message)
    chosen: list[tuple[str, Callable[[Any], Any]]] = [
        ("generated validator", rule.valid),
        ("hand-written (lower bound)", _hand_written),
        ("interpreter", rule.check),
    ]
    runs: dict[str, list[float]] = {name: [] for name, _ in chosen}
    for _ in range(rounds):
        for name, function in chosen:
            took = timeit.timeit(lambda f=function: f(message), number=number,
                                 timer=time.process_time)
            runs[name].append(took / number * 1e6)
    print(f"rich event validator alone, median of {rounds} rounds x {number} calls")
    for name, run in runs.items():
        print(f"{name:42s} {statistics.median(run):7.2f} us/call")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds (default 9)")
    parser.add_argument("--number", type=int, default=5000,
                        help="calls per variant per round (default 5000)")
    parser.add_argument("--interpreter", action="store_true",
                        help="also measure the closure interpreter (forced fallback)")
    parser.add_argument("--profile", choices=("rich", "simple"),
                        help="print a cProfile of the validated variant instead")
    parser.add_argument("--floor", action="store_true",
                        help="also time the rich event with a hand-written validator (a "
                             "lower bound for Python code) and with one that accepts "
                             "everything (the enforcement alone), and each validator alone")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line: us/call added for each event (for "
                             "bench/run.py)")
    args = parser.parse_args(argv)
    if args.json:
        chosen = variants(False, False)[:4]
        runs = measure(chosen, args.rounds, args.number)
        by_name = {name: run for (name, _, _, _), run in zip(chosen, runs, strict=True)}
        out = {}
        for size in ("simple", "rich"):
            base, planned = by_name[f"{size} event, no plan"], by_name[f"{size} event, validated"]
            out[f"{size}_base_us"] = statistics.median(base)
            out[f"{size}_added_us"] = statistics.median(
                p - b for p, b in zip(planned, base, strict=True))
        print(json.dumps(out))
        return
    if args.profile:
        profile(args.profile, args.number)
        return
    if args.floor:
        floor(args.rounds, args.number)
    chosen = variants(args.interpreter, args.floor)
    runs = measure(chosen, args.rounds, args.number)
    by_name = {name: run for (name, _, _, _), run in zip(chosen, runs, strict=True)}
    print(f"median of {args.rounds} rounds x {args.number} calls, CPU us/call")
    for name, run in by_name.items():
        print(f"{name:42s} {statistics.median(run):7.2f} us/call")
    for size in ("simple", "rich"):
        base = by_name[f"{size} event, no plan"]
        for suffix in ("", " (interpreter)", " (hand-written)", " (always valid)"):
            planned = by_name.get(f"{size} event, validated{suffix}")
            if planned is None:
                continue
            added = statistics.median(p - b for p, b in zip(planned, base, strict=True))
            print(f"{size} event: validation{suffix} adds {added:+.2f} us/call")


if __name__ == "__main__":
    main()
