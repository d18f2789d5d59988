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
`--profile rich|simple` prints a cProfile of the validated variant instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
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


def _planned(interpreted: bool = False) -> Callable[[], Client]:
    def make() -> Client:
        plan = load_plan(PLAN)
        if interpreted:  # every rule without its generated validator
            for rule in plan.rules:
                rule.valid = None
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


def variants(interpreter: bool) -> list[Variant]:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds (default 9)")
    parser.add_argument("--number", type=int, default=5000,
                        help="calls per variant per round (default 5000)")
    parser.add_argument("--interpreter", action="store_true",
                        help="also measure the closure interpreter (forced fallback)")
    parser.add_argument("--profile", choices=("rich", "simple"),
                        help="print a cProfile of the validated variant instead")
    args = parser.parse_args(argv)
    if args.profile:
        profile(args.profile, args.number)
        return
    chosen = variants(args.interpreter)
    runs = measure(chosen, args.rounds, args.number)
    by_name = {name: run for (name, _, _, _), run in zip(chosen, runs, strict=True)}
    print(f"median of {args.rounds} rounds x {args.number} calls, CPU us/call")
    for name, run in by_name.items():
        print(f"{name:42s} {statistics.median(run):7.2f} us/call")
    for size in ("simple", "rich"):
        base = by_name[f"{size} event, no plan"]
        for suffix in ("", " (interpreter)"):
            planned = by_name.get(f"{size} event, validated{suffix}")
            if planned is None:
                continue
            added = statistics.median(p - b for p, b in zip(planned, base, strict=True))
            print(f"{size} event: validation{suffix} adds {added:+.2f} us/call")


if __name__ == "__main__":
    main()
