"""The `segment-client spool` subcommand: look at a spool directory's dead-letter file and
send its messages again once what made the collector refuse them is fixed.

    segment-client spool dead-letters DIR [--json]
    segment-client spool resend DIR [--write-key KEY] [--host URL] [--timeout S]

`segment_client._cli` delegates to `add_parser(subparsers)`. `resend` sends each message
exactly as it was spooled (same bytes, `messageId` and timestamp); those refused again
go back into the dead-letter file with the new error. Runs on the calling thread and
blocks until the messages are delivered or `--timeout` passes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from segment_client._client import Client
from segment_client._exceptions import ConfigurationError, DeliveryError, SegmentError
from segment_client._queue import MemoryQueue, MessageQueue

from ._deadletter import DeadLetters, message_bytes
from ._files import open_directory

__all__ = ["add_parser"]

_QUIET = logging.NullHandler()


class _Usage(Exception):
    pass


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the `spool` subcommand on an argparse subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "spool", help="inspect a spool directory's dead letters and send them again",
        description="Messages the collector refused for good are kept in the spool "
                    "directory's dead-letter file (dead-letter.jsonl).",
    )
    commands = parser.add_subparsers(dest="spool_command", metavar="ACTION", required=True)
    listing = commands.add_parser(
        "dead-letters", help="list the dead-letter file, one line per message",
        description="List the dead letters: time, type, messageId, status and error.",
    )
    listing.add_argument("dir", help="the spool directory (spool_dir)")
    listing.add_argument("--json", action="store_true", help="print the entries as JSON lines")
    listing.add_argument("--shared-group", action="store_true",
                         help="accept a directory shared by its group")
    listing.set_defaults(handler=_list)
    resend = commands.add_parser(
        "resend", help="send the dead letters again; those refused again stay",
        description="Send every dead letter again, unchanged. Delivered ones leave the "
                    "file; refused ones are written back with the new error.",
    )
    resend.add_argument("dir", help="the spool directory (spool_dir)")
    resend.add_argument("--write-key", help="the source's write key (default $SEGMENT_WRITE_KEY)")
    resend.add_argument(
        "--host", help="collector base URL (default $SEGMENT_HOST, then https://api.segment.io)"
    )
    resend.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for delivery, retries included (default 60)")
    resend.add_argument("--shared-group", action="store_true",
                        help="accept a directory shared by its group")
    resend.set_defaults(handler=_resend)
    return parser


def _open(args: argparse.Namespace) -> DeadLetters:
    if not os.path.isdir(args.dir):
        raise _Usage(f"{args.dir!r} is not a directory")
    try:
        dir_fd, trust = open_directory(args.dir, shared_group=args.shared_group)
    except OSError as exc:
        raise _Usage(f"{args.dir!r} refused: {exc.strerror or exc}") from None
    return DeadLetters(dir_fd, trust)


def _list(args: argparse.Namespace) -> int:
    try:
        dead = _open(args)
    except _Usage as exc:
        print(f"segment-client spool: error: {exc}", file=sys.stderr)
        return 2
    count = 0
    try:
        entries = list(dead.entries())
    finally:
        dead.close()
    for _, entry in entries:
        count += 1
        if args.json:
            print(json.dumps({k: v for k, v in entry.items() if k != "_raw"},
                             ensure_ascii=False))
        elif "damaged" in entry:
            print(f"(damaged line) {entry['damaged'][:200]}")
        else:
            message = entry["message"]
            status = entry.get("status")
            print(
                f"{entry.get('time')}  {message.get('type', '?')}  "
                f"{message.get('messageId', '?')}  {status if status is not None else '-'}  "
                f"{entry.get('error')}"
            )
    if not args.json:
        print(f"{count} dead letter(s) in {args.dir}", file=sys.stderr)
    return 0


def _resend(args: argparse.Namespace) -> int:
    write_key = args.write_key or os.environ.get("SEGMENT_WRITE_KEY")
    try:
        if not write_key:
            raise _Usage("a write key is required: --write-key or $SEGMENT_WRITE_KEY")
        dead = _open(args)
    except _Usage as exc:
        print(f"segment-client spool: error: {exc}", file=sys.stderr)
        return 2
    try:
        return _resend_from(dead, args, write_key)
    finally:
        dead.close()


def _resend_from(dead: DeadLetters, args: argparse.Namespace, write_key: str) -> int:
    names, entries = dead.take()
    sendable = [(entry, message_bytes(entry)) for entry in entries if "damaged" not in entry]
    damaged = [entry for entry in entries if "damaged" in entry]
    if not entries:
        print(f"no dead letters in {args.dir}", file=sys.stderr)
        dead.done(names)
        return 0
    logger = logging.getLogger("segment_client")
    if _QUIET not in logger.handlers:
        logger.addHandler(_QUIET)  # the summary below says what failed
    refused: dict[str, DeliveryError] = {}

    def on_error(error: DeliveryError, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            refused[str(message.get("messageId"))] = error

    queue = MemoryQueue(max(1, len(sendable)))
    for _, data in sendable:
        queue.put(data)

    def factory() -> MessageQueue:
        return queue

    try:
        client = Client(write_key, host=args.host, queue=factory, on_error=on_error)
    except ConfigurationError as exc:
        _write_back(dead, sendable, {}, DeliveryError("not re-sent"), everything=True)
        dead.done(names)
        print(f"segment-client spool: error: {exc}", file=sys.stderr)
        return 2
    client.close_and_flush(args.timeout)
    left = _write_back(dead, sendable, refused, DeliveryError("not re-sent"), everything=False)
    for entry in damaged:  # kept as they were, for a person to read
        dead.append_raw(entry["damaged"])
    dead.done(names)
    sent = len(sendable) - left
    print(f"{sent} of {len(sendable)} dead letter(s) delivered; {left} kept in "
          f"{args.dir}/dead-letter.jsonl" + (f"; {len(damaged)} damaged line(s) kept"
                                              if damaged else ""), file=sys.stderr)
    return 0 if left == 0 else 1


def _write_back(
    dead: DeadLetters,
    sendable: list[tuple[dict[str, Any], bytes]],
    refused: dict[str, DeliveryError],
    default: DeliveryError,
    *,
    everything: bool,
) -> int:
    left = 0
    for entry, data in sendable:
        message_id = str(entry["message"].get("messageId"))
        if everything or message_id in refused:
            left += 1
            error = refused.get(message_id, default)
            if not dead.append(data, error):
                raise SegmentError("could not write the dead-letter file back")
    return left
