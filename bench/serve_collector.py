"""Run the project's own collector (segment_client.collector) in its own process.

    python bench/serve_collector.py --port-file PATH

The chosen port is written to PATH; SIGTERM stops it. Run by bench/run.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

from segment_client.collector import Collector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Collector(port=args.port) as collector:
        if args.port_file:
            tmp = args.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(collector.port))
            os.replace(tmp, args.port_file)
        while not stop.wait(3600):
            pass


if __name__ == "__main__":
    main()
