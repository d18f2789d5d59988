"""A process that queues messages and waits to be killed, for tests/interop.

    python kill_child.py URL COUNT [SPOOL_DIR]

Tracks COUNT messages (none sent yet: flush_at and flush_interval are far away), prints
`ready`, then blocks on stdin. With SPOOL_DIR the client uses the on-disk spool there.
"""

from __future__ import annotations

import sys

from segment_client import Client


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    options = {"spool_dir": sys.argv[3]} if len(sys.argv) > 3 else {}
    client = Client("key", host=url, flush_at=2500, flush_interval=3600, **options)
    for i in range(count):
        client.track("killed", "Queued", {"i": i})
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
