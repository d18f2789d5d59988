"""A collector in its own process, for tests that kill it or measure its memory.

    python tests/_support/collector_process.py DB [--slow-validator SECONDS]

Prints `PORT <n>` once listening, then serves until killed (SIGTERM stops it cleanly).
`--slow-validator`: every stored message is checked by a validator taking that long
(a slow tracking plan).
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from segment_client.collector import Collector


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--slow-validator", type=float, default=0.0)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pause = threading.Event()  # never set: wait() is the slow validator's work

    def slow(message: dict[str, Any]) -> list[str]:
        pause.wait(args.slow_validator)
        return []

    validator = slow if args.slow_validator else None
    with Collector(db=args.db, validator=validator) as collector:
        print(f"PORT {collector.port}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
