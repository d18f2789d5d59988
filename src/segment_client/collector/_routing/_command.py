"""`segment-client destinations check FILE`: check a destinations file, route samples.

Exit status: 0 the file is valid; 1 it is not (the first wrong field is printed);
2 a usage error. With `--message JSON` (repeatable) it also prints where each sample
message goes and why.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from ._config import Destination, DestinationsError, Filter, load_destinations
from ._decide import Router

__all__ = ["add_parser", "filter_text"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the `destinations` subcommand on an argparse subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "destinations", help="check a destinations file (routing in the local collector)",
        description="Work with the destinations file the local collector routes by.",
    )
    actions = parser.add_subparsers(dest="destinations_command", metavar="ACTION")
    actions.required = True
    check = actions.add_parser(
        "check", help="check a destinations file and show its destinations and filters",
        description="Check a destinations file (TOML or JSON) and print what it defines; "
                    "with --message, print each sample message's routing.",
    )
    check.add_argument("file", help="the destinations file (.toml or .json)")
    check.add_argument("--message", action="append", default=[], metavar="JSON",
                       help="a sample message (JSON object) to route (repeatable)")
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
    check.set_defaults(handler=_run_check)
    return parser


def _run_check(args: argparse.Namespace) -> int:
    samples: list[dict[str, Any]] = []
    for text in args.message:
        try:
            sample = json.loads(text)
        except ValueError as exc:
            print(f"segment-client destinations: --message is not JSON: {exc}",
                  file=sys.stderr)
            return 2
        if not isinstance(sample, dict):
            print("segment-client destinations: --message must be a JSON object",
                  file=sys.stderr)
            return 2
        samples.append(sample)
    try:
        destinations = load_destinations(args.file)
    except (OSError, DestinationsError) as exc:
        print(f"segment-client destinations: {exc}", file=sys.stderr)
        return 1
    router = Router(destinations)
    routings = [router.route(sample) for sample in samples]
    if args.json:
        print(json.dumps({
            "destinations": [_describe(d) for d in destinations],
            "routing": [routing.to_dict() for routing in routings],
        }, indent=2))
        return 0
    _print_text(args.file, destinations, samples, routings, sys.stdout)
    return 0


def _describe(destination: Destination) -> dict[str, Any]:
    return {
        "name": destination.name,
        "enabled": destination.enabled,
        "filters": [filter_text(f) for f in destination.filters],
    }


def filter_text(rule: Filter) -> str:
    """One filter in a line: its name, action and condition."""
    parts: list[str] = []
    if rule.match.types:
        parts.append("type " + "|".join(rule.match.types))
    if rule.match.events:
        parts.append("event " + "|".join(repr(e) for e in rule.match.events))
    for condition in rule.match.where:
        value = "" if condition.op in ("exists", "missing") else f" {json.dumps(condition.value)}"
        parts.append(f"{condition.field} {condition.op}{value}")
    when = " when " + " and ".join(parts) if parts else " (every message)"
    extra = ""
    if rule.action == "sample":
        extra = f" {rule.percent:g}% by {rule.by}"
    elif rule.fields:
        extra = " " + ", ".join(rule.fields)
    return f"{rule.name}: {rule.action}{extra}{when}"


def _print_text(
    path: str, destinations: list[Destination], samples: list[dict[str, Any]],
    routings: list[Any], out: TextIO,
) -> None:
    print(f"{path}: valid, {len(destinations)} destination(s)", file=out)
    for destination in destinations:
        state = "" if destination.enabled else " (disabled)"
        print(f"  {destination.name}{state}", file=out)
        for rule in destination.filters:
            print(f"    - {filter_text(rule)}", file=out)
    for sample, routing in zip(samples, routings, strict=True):
        label = sample.get("event") or sample.get("type") or "message"
        print(f"message {label!r}:", file=out)
        if not routing.segment:
            print("  not sent to Segment (integrations[\"Segment.io\"] is false)", file=out)
        for decision in routing.decisions:
            mark = "->" if decision.delivered else "x "
            print(f"  {mark} {decision.destination}: {decision.reason}", file=out)
        for key in routing.unknown:
            print(f"  ?  integrations names {key!r}, which is not in the file "
                  "(keys are case-sensitive)", file=out)
