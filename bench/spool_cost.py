"""What the on-disk spool costs: caller time of track() and end-to-end throughput.

Both modes run in the same process, interleaved, against a transport that only counts
(no HTTP), so the difference is the queue:

    python bench/spool_cost.py [--calls 20000] [--rounds 5] [--dir /tmp]

Reports the median (p90, mean) caller cost of one track() per mode while the consumer
sends, the median with the consumer idle (the enqueue alone: the spool's write(2)
releases the GIL, so in a tight loop the consumer's work lands inside the caller's
calls, where the memory queue's lands in GIL switch-interval pauses), the added cost of
the spool, and throughput (messages per second from the first call until
close_and_flush() returns) with the spool's ratio to memory.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from segment_client import Client


class CountingTransport:
    """Accepts every batch and counts messages: keeps the transport out of the numbers."""

    def __init__(self) -> None:
        self.count = 0

    def send(
        self, batch: Sequence[bytes], *, retry_count: int = 0, timeout: float | None = None
    ) -> None:
        self.count += len(batch)

    def close(self) -> None:
        pass


PROPS = {"revenue": 59.99, "currency": "USD", "sku": "SKU-12345", "items": [1, 2, 3]}


def make_client(
    mode: str, spool_root: str, idle: bool = False
) -> tuple[Client, CountingTransport]:
    transport = CountingTransport()
    options: dict[str, Any] = {"transport": transport, "max_queue_size": 10_000_000}
    if idle:
        # The consumer does not run during the calls: the enqueue cost alone.
        options.update(flush_at=2500, flush_interval=3600)
    if mode == "spool":
        options["spool_dir"] = tempfile.mkdtemp(dir=spool_root)
    return Client("bench-key", **options), transport


def caller_cost(mode: str, calls: int, spool_root: str, idle: bool = False) -> list[float]:
    client, _ = make_client(mode, spool_root, idle)
    timer = time.perf_counter_ns
    track = client.track
    samples = []
    gc.disable()
    try:
        for _ in range(calls):
            start = timer()
            track("user-1", "Order Completed", PROPS)
            samples.append((timer() - start) / 1000)
    finally:
        gc.enable()
        client.close_and_flush()
    return samples


def throughput(mode: str, calls: int, spool_root: str) -> float:
    client, transport = make_client(mode, spool_root)
    start = time.perf_counter()
    for _ in range(calls):
        client.track("user-1", "Order Completed", PROPS)
    client.close_and_flush()
    elapsed = time.perf_counter() - start
    assert transport.count == calls, (transport.count, calls)
    return calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where spool directories are created")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        costs: dict[str, list[float]] = {"memory": [], "spool": []}
        rates: dict[str, list[float]] = {"memory": [], "spool": []}
        for _ in range(args.rounds):
            for mode in ("memory", "spool"):
                samples = caller_cost(mode, args.calls, root)
                costs[mode].append(statistics.median(samples))
                costs.setdefault(mode + "_p90", []).append(statistics.quantiles(samples, n=10)[-1])
                costs.setdefault(mode + "_mean", []).append(statistics.fmean(samples))
                idle = caller_cost(mode, 2400, root, idle=True)
                costs.setdefault(mode + "_idle", []).append(statistics.median(idle))
                rates[mode].append(throughput(mode, args.calls, root))
    med = {mode: statistics.median(values) for mode, values in costs.items()}
    rate = {mode: statistics.median(values) for mode, values in rates.items()}
    print(f"calls per round: {args.calls}, rounds: {args.rounds} (medians over rounds)")
    for mode in ("memory", "spool"):
        print(
            f"{mode:>7}: track() median {med[mode]:.2f} us, p90 {med[mode + '_p90']:.2f} us, "
            f"mean {med[mode + '_mean']:.2f} us; consumer idle: median "
            f"{med[mode + '_idle']:.2f} us; throughput {rate[mode]:,.0f} msg/s"
        )
    print(
        f"spool adds {med['spool'] - med['memory']:.2f} us to the median track() cost "
        f"({med['spool_idle'] - med['memory_idle']:.2f} us with the consumer idle)"
    )
    print(f"spool throughput is {rate['spool'] / rate['memory']:.0%} of memory")


if __name__ == "__main__":
    main()
