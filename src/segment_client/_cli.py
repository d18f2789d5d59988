"""The `segment-client` command: send one message, run the local collector, the demo.

Exit codes: 0 success; 1 a delivery failure (the reason is printed); 2 a usage,
configuration or I/O error (a bad option, a database path that cannot be opened, a port
that cannot be bound), reported in one line before anything is sent. The write key is
read from `--write-key` or `$SEGMENT_WRITE_KEY` and never printed.

Adding a subcommand: write `def _add_name(subparsers) -> None` that adds a parser with
`set_defaults(handler=fn)` (fn takes the parsed namespace, returns the exit code) and
decorate it with `@command`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from ._cliargs import UsageError, port
from ._client import DEFAULT_HOST, Client
from ._exceptions import DeliveryError, SegmentError
from ._version import __version__

__all__ = ["command", "main"]

Subparsers = "argparse._SubParsersAction[argparse.ArgumentParser]"
Register = Callable[[Any], None]
_COMMANDS: list[Register] = []
_QUIET = logging.NullHandler()


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit 2), not the usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def command(register: Register) -> Register:
    """Register a subcommand (see the module docstring)."""
    _COMMANDS.append(register)
    return register


def _json_object(name: str) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{name} must be a JSON object: {exc}") from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(
                f"{name} must be a JSON object, got {type(value).__name__}"
            )
        return value

    parse.__name__ = name  # argparse names the type in its error message
    return parse


# -- sending one message ----------------------------------------------------------------

_FIELDS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "identify": [("--traits", {"type": _json_object("--traits")})],
    "track": [
        ("--event", {"required": True, "help": "the event name"}),
        ("--properties", {"type": _json_object("--properties")}),
    ],
    "group": [
        ("--group-id", {"required": True}),
        ("--traits", {"type": _json_object("--traits")}),
    ],
    "page": [
        ("--name", {}),
        ("--category", {}),
        ("--properties", {"type": _json_object("--properties")}),
    ],
    "screen": [
        ("--name", {}),
        ("--category", {}),
        ("--properties", {"type": _json_object("--properties")}),
    ],
    "alias": [("--previous-id", {"required": True})],
}
_HELP = {
    "identify": "send an identify (who the user is)",
    "track": "send a track (what the user did)",
    "group": "send a group (the user's account or company)",
    "page": "send a page view",
    "screen": "send a screen view",
    "alias": "send an alias (link two ids)",
}


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write-key", help="the source's write key (default $SEGMENT_WRITE_KEY)")
    parser.add_argument(
        "--host", help="collector base URL (default $SEGMENT_HOST, then https://api.segment.io)"
    )
    parser.add_argument("--path", default="/v1/batch", help="batch route (default /v1/batch)")
    parser.add_argument("--timeout", type=_seconds, default=10.0,
                        help="seconds to wait for delivery, retries included (default 10)")
    parser.add_argument("--max-retries", type=_count, default=3,
                        help="retries after a failed attempt (default 3)")
    parser.add_argument("--no-gzip", action="store_true", help="send uncompressed bodies")


@command
def _add_message_commands(subparsers: Any) -> None:
    for method, fields in _FIELDS.items():
        parser = subparsers.add_parser(method, help=_HELP[method], description=_HELP[method])
        parser.add_argument("--user-id", required=method == "alias")
        if method != "alias":
            parser.add_argument("--anonymous-id")
        for flag, options in fields:
            parser.add_argument(flag, **options)
        parser.add_argument("--context", type=_json_object("--context"))
        parser.add_argument("--integrations", type=_json_object("--integrations"))
        parser.add_argument("--timestamp", help="ISO 8601 (default: now)")
        parser.add_argument("--message-id", help="default: a new UUID")
        _add_connection_options(parser)
        parser.set_defaults(handler=_send_one, method=method)


def _send_one(args: argparse.Namespace) -> int:
    write_key = args.write_key or os.environ.get("SEGMENT_WRITE_KEY")
    if not write_key:
        raise UsageError("a write key is required: --write-key or $SEGMENT_WRITE_KEY")
    # The command prints the reason itself; without a handler the library's error log
    # would reach stderr a second time through logging's last-resort handler.
    logger = logging.getLogger("segment_client")
    if _QUIET not in logger.handlers:
        logger.addHandler(_QUIET)
    errors: list[str] = []

    def on_error(error: DeliveryError, messages: list[dict[str, Any]]) -> None:
        # The key as a whole word only: a short test key must not garble the text.
        errors.append(re.sub(rf"(?<![\w-]){re.escape(write_key)}(?![\w-])", "***", str(error)))

    try:
        client = Client(
            write_key, host=args.host, path=args.path, max_retries=args.max_retries,
            request_timeout=min(args.timeout, 10.0) if args.timeout > 0 else 10.0,
            gzip=not args.no_gzip, on_error=on_error, retry_max_delay=2.0,
        )
    except SegmentError as exc:
        raise UsageError(str(exc)) from None
    kwargs: dict[str, Any] = {
        "context": args.context, "integrations": args.integrations,
        "timestamp": args.timestamp, "message_id": args.message_id,
        "user_id": args.user_id,
    }
    method = args.method
    if method != "alias":
        kwargs["anonymous_id"] = args.anonymous_id
    if method == "track":
        kwargs.update(event=args.event, properties=args.properties)
    elif method in ("identify", "group"):
        kwargs["traits"] = args.traits
        if method == "group":
            kwargs["group_id"] = args.group_id
    elif method in ("page", "screen"):
        kwargs.update(name=args.name, category=args.category, properties=args.properties)
    else:
        kwargs["previous_id"] = args.previous_id
    try:
        message_id = getattr(client, method)(**kwargs)
    except SegmentError as exc:
        client.close_and_flush(0)
        raise UsageError(str(exc)) from None
    delivered = client.close_and_flush(timeout=args.timeout)
    if delivered and not errors:
        print(message_id)
        return 0
    reason = errors[0] if errors else f"not delivered within {args.timeout:g} s"
    print(f"segment-client: {method} {message_id} not delivered: {reason}", file=sys.stderr)
    return 1


# -- the collector (defined in collector/_command.py) -------------------------------------

@command
def _add_collector(subparsers: Any) -> None:
    from .collector._command import add_parser

    add_parser(subparsers)


@command
def _add_typegen(subparsers: Any) -> None:
    from ._plan._typegen import add_parser

    add_parser(subparsers)


@command
def _add_spool(subparsers: Any) -> None:
    from ._spool._command import add_parser

    add_parser(subparsers)


@command
def _add_destinations(subparsers: Any) -> None:
    from .collector._routing._command import add_parser

    add_parser(subparsers)


def _plan_validator(path: str | None) -> Callable[[dict[str, Any]], list[str]] | None:
    from .collector._command import plan_validator

    return plan_validator(path)


def _faults(specs: Sequence[str]) -> list[Any]:
    from .collector._command import faults

    return list(faults(specs))


def _interrupt_on_sigterm() -> None:
    from .collector._command import interrupt_on_sigterm

    interrupt_on_sigterm()


# -- the demo -----------------------------------------------------------------------------

@command
def _add_demo(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="send a realistic stream to an embedded collector and summarise it",
        description="Start a collector on a free loopback port, drive a real Client with "
                    "a realistic stream (identify, track, group, page over several users), "
                    "close it, and print what arrived.",
    )
    parser.add_argument("--users", type=int, default=8, help="simulated users (default 8)")
    parser.add_argument("--seed", type=int, default=7, help="stream seed (default 7)")
    parser.add_argument("--port", type=port, default=0, help="collector port (default: free)")
    parser.add_argument("--keep-open", action="store_true",
                        help="keep the collector and its page running until Ctrl-C")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="inject collector faults to watch retries (see `collector`)")
    parser.add_argument("--fault-seed", type=int, default=1)
    parser.add_argument("--tracking-plan", metavar="PLAN.json",
                        help="have the collector check messages against this plan")
    parser.add_argument("--write-key",
                        help="send to a real collector instead (default $SEGMENT_WRITE_KEY)")
    parser.add_argument("--host", help="with a write key: the collector's base URL "
                        "(default $SEGMENT_HOST, then https://api.segment.io)")
    parser.add_argument("--local", action="store_true",
                        help="use the embedded collector even when a write key is set")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    if args.users < 1:
        raise UsageError(f"--users must be >= 1, got {args.users}")
    write_key = None if args.local else args.write_key or os.environ.get("SEGMENT_WRITE_KEY")
    if write_key:
        if args.keep_open or args.fault or args.tracking_plan:
            raise UsageError(
                "--keep-open, --fault and --tracking-plan need the embedded collector: "
                "add --local (a write key is configured)"
            )
        host = args.host or os.environ.get("SEGMENT_HOST") or DEFAULT_HOST
        return _demo_to(args, write_key, host, None)
    from .collector import Collector

    collector = Collector(
        port=args.port, faults=_faults(args.fault), seed=args.fault_seed,
        validator=_plan_validator(args.tracking_plan),
    )
    url = collector.start()
    try:
        code = _demo_to(args, "demo-write-key", url, collector)
        if args.keep_open:
            # The handler goes in before the announcement, and the announcement inside
            # the suppress: whoever waits for that line may send SIGTERM at once.
            _interrupt_on_sigterm()
            with contextlib.suppress(KeyboardInterrupt):
                print(f"\nThe collector keeps serving: open {url}/ (Ctrl-C to stop)", flush=True)
                collector.serve_forever()
    finally:
        collector.close()
    return code


def _demo_to(
    args: argparse.Namespace, write_key: str, host: str, collector: Any | None
) -> int:
    """Drive a real Client with the demo stream to `host`; print what arrived."""
    from collections import Counter

    from ._demo import demo_stream

    failures: list[str] = []
    local = collector is not None
    try:
        client = Client(
            write_key, host=host,
            # Fast retries against the local collector; the defaults against a real one.
            retry_base_delay=0.05 if local else 0.5,
            retry_max_delay=0.5 if local else 60.0,
            on_error=lambda error, messages: failures.append(f"{len(messages)}: {error}"),
        )
    except SegmentError as exc:
        raise UsageError(str(exc)) from None
    started = time.perf_counter()
    by_type: Counter[str] = Counter()
    by_event: Counter[str] = Counter()
    for method, kwargs in demo_stream(args.seed, args.users):
        getattr(client, method)(**kwargs)
        by_type[method] += 1
        if method == "track":
            by_event[kwargs["event"]] += 1
    client.close_and_flush(timeout=30)
    client_stats = client.stats()
    summary = {
        "url": host,
        "users": args.users,
        "sent": sum(by_type.values()),
        "seconds": round(time.perf_counter() - started, 3),
        "client": {
            "delivered": client_stats.delivered,
            "failed": client_stats.failed,
            "retried": client_stats.retried,
            "batches": client_stats.batches_sent,
        },
        # What a remote collector holds cannot be read back: show what was sent.
        "collector": collector.stats() if collector is not None else None,
        "sent_by_type": dict(by_type),
        "sent_by_event": dict(by_event),
    }
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_summary(summary, sys.stdout)
    for failure in failures:
        print(f"segment-client demo: failed {failure}", file=sys.stderr)
    return 0 if client_stats.failed == 0 else 1


def _counts(counts: dict[str, int]) -> str:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return " · ".join(f"{name} {n}" for name, n in ordered) or "-"


def _print_summary(summary: dict[str, Any], out: TextIO) -> None:
    stats = summary["collector"]
    client = summary["client"]
    where = "a local collector" if stats is not None else "the collector"
    lines = [
        f"segment-client demo: {summary['sent']} messages from {summary['users']} users "
        f"to {where} at {summary['url']}",
        f"  client     delivered {client['delivered']} · failed {client['failed']} · "
        f"retried {client['retried']} · {client['batches']} batches · "
        f"{summary['seconds']:.2f} s",
    ]
    if stats is None:
        lines += [
            f"  sent       {_counts(summary['sent_by_type'])}",
            f"  by event   {_counts(summary['sent_by_event'])}",
        ]
    else:
        lines += [
            f"  collector  stored {stats['total']} ({stats['unique']} unique, "
            f"{stats['duplicates']} duplicates) in {stats['batches']} batches · "
            f"{stats['rejected_requests']} rejected requests",
            f"  by type    {_counts(stats['by_type'])}",
            f"  by event   {_counts(stats['by_event'])}",
        ]
    print("\n".join(lines), file=out, flush=True)


# -- entry point --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every registered subcommand."""
    parser = _Parser(
        prog="segment-client",
        description="Send Segment messages, run a local collector, or try the demo.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _COMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 delivery failure, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on a usage error, 0 on --help
        return exc.code if isinstance(exc.code, int) else 2
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except (UsageError, SegmentError) as exc:
        # SegmentError here is a ConfigurationError or MessageError a command did not
        # turn into a UsageError itself: still the user's input, still one line.
        print(f"segment-client {args.command}: error: {exc}", file=sys.stderr)
        return 2
