"""The `segment-client collector` subcommand: its options and startup.

`segment_client._cli` delegates to `add_parser(subparsers)`; the demo reuses `faults`,
`plan_validator` and `interrupt_on_sigterm`. Runs on the main thread; `run` blocks
until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from segment_client._cli import UsageError, port

from ._faults import Fault, parse_fault

__all__ = ["add_parser", "faults", "interrupt_on_sigterm", "plan_validator", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the `collector` subcommand on an argparse subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "collector", help="run the local Segment-compatible collector",
        description="Run a local Segment-compatible collector with a debugger page.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=8787, help="port (default 8787; 0: any)")
    parser.add_argument("--db", default="segment-collector.sqlite3",
                        help="SQLite file, or :memory: (default segment-collector.sqlite3)")
    parser.add_argument("--quiet", action="store_true", help="no line per batch")
    parser.add_argument("--discard", action="store_true",
                        help="count messages without validating or storing them (benchmarks)")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="inject a fault, e.g. status=500,rate=0.2 | "
                             "status=429,rate=0.1,retry_after=1 | drop,rate=0.05 | "
                             "delay=2,count=3 (repeatable)")
    parser.add_argument("--seed", type=int, help="seed for the fault generator")
    parser.add_argument("--tracking-plan", metavar="PLAN.json",
                        help="check each stored message against this tracking plan and "
                             "record its violations (shown on the debugger page)")
    parser.add_argument("--write-key", help="require this write key (401 otherwise)")
    parser.add_argument("--strict", action="store_true",
                        help="answer 400 to a batch with an invalid message")
    parser.set_defaults(handler=run)
    return parser


def plan_validator(path: str | None) -> Callable[[dict[str, Any]], list[str]] | None:
    """The tracking plan's check for `--tracking-plan` (None without one); UsageError."""
    if path is None:
        return None
    from segment_client._plan import PlanError, load_plan

    try:
        return load_plan(path).check
    except (OSError, PlanError, ValueError) as exc:
        raise UsageError(f"--tracking-plan: {exc}") from None


FAULT_KINDS = (
    "a fault is comma-separated fields, one of the kinds status=CODE, drop or "
    "delay=SECONDS, with rate=0..1, count=N, retry_after=SECONDS or store "
    "(e.g. status=500,rate=0.2)"
)


def faults(specs: Sequence[str]) -> list[Fault]:
    """The `--fault` specs parsed; UsageError naming the bad one and the valid kinds."""
    parsed = []
    for spec in specs:
        try:
            parsed.append(parse_fault(spec))
        except ValueError as exc:
            raise UsageError(f"--fault {spec!r}: {exc}; {FAULT_KINDS}") from None
    return parsed


def interrupt_on_sigterm() -> None:
    """Make SIGTERM end `serve_forever` like Ctrl-C (main thread only)."""
    if threading.current_thread() is threading.main_thread():

        def handler(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    """Start the collector and serve until Ctrl-C / SIGTERM; returns the exit code."""
    import sqlite3

    from ._server import Collector

    rules, validator = faults(args.fault), plan_validator(args.tracking_plan)
    try:
        collector = Collector(
            args.host, args.port, db=args.db, write_key=args.write_key, strict=args.strict,
            faults=rules, seed=args.seed,
            log=None if args.quiet else sys.stdout, discard=args.discard,
            validator=validator,
        )
    except (OSError, sqlite3.Error) as exc:  # I/O: exit 2 in one line, like a bad option
        raise UsageError(f"--db {args.db}: cannot open the database: {exc}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        url = collector.start()
    except (OSError, OverflowError) as exc:
        collector.store.close()
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    auth = "write key required" if args.write_key else "any write key"
    print(f"segment-client collector listening on {url} (POST {url}/v1/batch; "
          f"page {url}/; db {args.db}; {auth}); Ctrl-C to stop", flush=True)
    interrupt_on_sigterm()
    try:
        collector.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        collector.close()
    print("segment-client collector stopped", flush=True)
    return 0
