"""Child process for the SIGTERM tests: queue messages, install the handler, wait.

argv: sink path, mode (default | chain | ignore | none: no handler), message count.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from segment_client import Client, install_sigterm_handler


class FileSink:
    """A transport appending each delivered message as one line (survives the process)."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the process

    def send(
        self, batch: Sequence[bytes], *, retry_count: int = 0, timeout: float | None = None
    ) -> None:
        self.file.write("".join(data.decode() + "\n" for data in batch))
        self.file.flush()

    def close(self) -> None:
        self.file.flush()


def main() -> None:
    sink, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "chain":

        def previous(signum: int, frame: FrameType | None) -> None:
            delivered = len(Path(sink).read_text().splitlines())
            print(f"previous handler saw {delivered} delivered", flush=True)
            sys.exit(7)

        signal.signal(signal.SIGTERM, previous)
    elif mode == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Nothing is sent before the flush: no size or time trigger can fire.
    client = Client("k", transport=FileSink(sink), flush_at=2500, flush_interval=3600)
    if mode != "none":
        install_sigterm_handler(client, timeout=10)
        install_sigterm_handler(client, timeout=10)  # twice: still one handler, one flush
    for i in range(count):
        client.track("user-1", "Queued", {"i": i})
    print("ready", flush=True)
    # Wait for the parent's line, sent after SIGTERM. Not signal.pause(): the signal
    # may arrive before it, or at another thread, and pause() would then wait forever.
    # Python runs the handler before the next bytecode after readline returns.
    sys.stdin.readline()
    # Only reached when SIGTERM was ignored: count what the handler's flush delivered.
    delivered = len(Path(sink).read_text().splitlines())
    print(f"survived with {delivered} delivered", flush=True)
    client.close_and_flush(10)


if __name__ == "__main__":
    main()
