"""The `segment-client collector` subcommand: its options and startup.

`segment_client._cli` delegates to `add_parser(subparsers)`; the demo reuses `faults`,
`plan_validator` and `interrupt_on_sigterm`. Runs on the main thread; `run` blocks
until Ctrl-C or SIGTERM.

The write key to require comes from `--write-key-file` (first line of the file),
`$SEGMENT_COLLECTOR_WRITE_KEY`, or `--write-key` (visible to other local users in the
process list), in that order of preference; it is never printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from segment_client._cliargs import UsageError, port

from ._faults import Fault, parse_fault

WRITE_KEY_ENV = "SEGMENT_COLLECTOR_WRITE_KEY"

__all__ = ["WRITE_KEY_ENV", "add_parser", "faults", "interrupt_on_sigterm", "plan_validator", "run"]


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
    parser.add_argument("--write-key",
                        help="require this write key (401 otherwise); visible in the "
                             f"process list: prefer --write-key-file or ${WRITE_KEY_ENV}")
    parser.add_argument("--write-key-file", metavar="PATH",
                        help="require the write key on the first line of this file")
    parser.add_argument("--strict", action="store_true",
                        help="answer 400 to a batch with an invalid message")
    parser.add_argument("--analytics-js-dir", metavar="DIR",
                        help="serve analytics.js (@segment/analytics-next) from this "
                             "node_modules (default: ./node_modules when it has it)")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                        help="let web pages of this origin (e.g. http://localhost:3000) "
                             "send events, with CORS (repeatable)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also answer requests whose Host is NAME, e.g. a container "
                             "or LAN name (repeatable; loopback names, IP addresses and "
                             "--host are always answered)")
    parser.add_argument("--max-connections", type=int, default=256, metavar="N",
                        help="connections served at once; more get 503 (default 256)")
    parser.add_argument("--idle-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="close a connection idle this long (default 60)")
    # Routing, warehouse and usage (collector/_destinations.py).
    parser.add_argument("--destinations", metavar="FILE",
                        help="route by this destinations file (TOML or JSON); see Usage")
    parser.add_argument("--warehouse", metavar="URL",
                        help="keep Segment's warehouse schema loaded: sqlite:PATH or "
                             "postgresql://USER@HOST/DB")
    parser.set_defaults(handler=run)
    from ._usage._command import add_parser as add_report

    add_report(parser.add_subparsers(dest="collector_command", metavar="ACTION"))
    return parser


def write_key(args: argparse.Namespace) -> str | None:
    """The write key to require: --write-key-file, then $SEGMENT_COLLECTOR_WRITE_KEY,
    then --write-key (None: any key). UsageError for an unreadable or empty file."""
    path: str | None = getattr(args, "write_key_file", None)
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                key = file.readline().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--write-key-file: cannot read {path}: {exc}") from None
        if not key:
            raise UsageError(f"--write-key-file: {path} holds no key on its first line")
        return key
    return os.environ.get(WRITE_KEY_ENV) or args.write_key or None


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

    key = write_key(args)
    rules, validator = faults(args.fault), plan_validator(args.tracking_plan)
    try:
        collector = Collector(
            args.host, args.port, db=args.db, write_key=key, strict=args.strict,
            faults=rules, seed=args.seed,
            log=None if args.quiet else sys.stdout, discard=args.discard,
            validator=validator,
            analytics_js_dir=args.analytics_js_dir,
            allowed_origins=args.allow_origin, allowed_hosts=args.allow_host,
            max_connections=args.max_connections, idle_timeout=args.idle_timeout,
        )
    except (OSError, sqlite3.Error) as exc:  # I/O: exit 2 in one line, like a bad option
        raise UsageError(f"--db {args.db}: cannot open the database: {exc}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from ._destinations import attach_options

    destinations = attach_options(collector, args.destinations, args.warehouse)
    try:
        url = collector.start()
    except (OSError, OverflowError) as exc:
        destinations.close()
        collector.store.close()
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    auth = "write key required" if key else "any write key"
    if args.allow_origin:
        auth += "; events from " + ", ".join(args.allow_origin)
    # The handler goes in before the banner, and the banner inside the try: whoever
    # waits for the banner may send SIGTERM at once.
    interrupt_on_sigterm()
    try:
        print(f"segment-client collector listening on {url} (POST {url}/v1/batch; "
              f"page {url}/; db {args.db}; {auth}); Ctrl-C to stop", flush=True)
        if collector.browser.build is not None:
            print(f"analytics.js served: snippet script {url}/analytics.js/v2/KEY/"
                  f"analytics.min.js with analytics._cdn=\"{url}\"", flush=True)
        collector.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        collector.close()
        destinations.close()
    print("segment-client collector stopped", flush=True)
    return 0
