"""`segment-client collector report`: the usage report as text or JSON.

From a collector's store file (`--db`, routed with `--destinations`) or from a running
collector (`--url`, which routes with its own destinations file). Exit status: 0 printed;
1 the store or the collector could not be read; 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from segment_client.collector._follow import store_source
from segment_client.collector._routing import DestinationsError, Router, load_destinations

from ._counter import UsageCounter

__all__ = ["add_parser", "print_report"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `report` on the `collector` command's subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="print usage: monthly tracked users, API calls, events per destination",
        description="Print the usage that drives a Segment bill (MTUs, API calls, events per "
                    "destination) and a month projected from the observed rate.",
    )
    parser.add_argument("--db", default="segment-collector.sqlite3",
                        help="the collector's store file (default segment-collector.sqlite3)")
    parser.add_argument("--url", help="ask a running collector instead, e.g. "
                                      "http://127.0.0.1:8787")
    parser.add_argument("--destinations", metavar="FILE",
                        help="route with this destinations file (with --db)")
    parser.add_argument("--multiplier", type=float, default=1.0,
                        help="production traffic as a multiple of the observed (default 1)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.multiplier <= 0:
        print("segment-client collector report: --multiplier must be above 0", file=sys.stderr)
        return 2
    try:
        report = _from_url(args) if args.url else _from_db(args)
    except _Failed as exc:
        print(f"segment-client collector report: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, sys.stdout)
    return 0


class _Failed(Exception):
    pass


def _from_db(args: argparse.Namespace) -> dict[str, Any]:
    from segment_client.collector._store import Store

    router = Router()
    if args.destinations:
        try:
            router = Router(load_destinations(args.destinations))
        except (OSError, DestinationsError) as exc:
            raise _Failed(f"--destinations: {exc}") from None
    if args.db != ":memory:" and not Path(args.db).is_file():
        raise _Failed(f"no collector store at {args.db} (see --db, or use --url)")
    store = Store(args.db)
    try:
        counter = UsageCounter(router)
        fetch = store_source(store)
        after = 0
        while True:
            records = fetch(after, 5000)
            if not records:
                break
            counter.load(records)
            after = records[-1].row_id
    finally:
        store.close()
    return counter.report(args.multiplier)


def _from_url(args: argparse.Namespace) -> dict[str, Any]:
    query = urllib.parse.urlencode({"multiplier": args.multiplier})
    url = f"{args.url.rstrip('/')}/v1/usage?{query}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise _Failed(f"cannot read {url}: {exc}") from None
    return data


def print_report(report: dict[str, Any], out: TextIO) -> None:
    """The report as a few lines of text."""
    observed = report["observed"]
    projection = report["projection"]
    print(f"API calls: {report['api_calls']:,}"
          + (f" (+{report['not_sent_to_segment']:,} never sent to Segment)"
             if report["not_sent_to_segment"] else ""), file=out)
    for month in report["months"]:
        print(f"  {month['month']}: {month['mtu']:,} MTU ({month['user_ids']:,} userIds + "
              f"{month['anonymous_ids']:,} anonymousIds never linked), "
              f"{month['api_calls']:,} API calls", file=out)
    if report["destinations"]:
        print("Events per destination:", file=out)
        for name, count in report["destinations"].items():
            print(f"  {name}: {count:,}", file=out)
    if observed["seconds"]:
        print(f"Observed: {report['api_calls']:,} calls over {observed['seconds'] // 60:,} "
              f"minute(s), {observed['api_calls_per_second']:,} per second", file=out)
    multiplier = projection["multiplier"]
    print(f"Projected {projection['days']} days at {multiplier:g}x the observed traffic: "
          f"{projection['api_calls']:,} API calls, {projection['mtu']:,} MTU", file=out)
    for name, count in projection["destinations"].items():
        print(f"  {name}: {count:,} events", file=out)
