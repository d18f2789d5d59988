"""Find the backlog batch cap: throughput and latency to first delivery per cap.

    python bench/batch_cap.py [--n 50000] [--caps 100,250,500,1000,2500] [--reps 3] [--small]

Each cap runs in its own process against bench/sink.py (a counting server that is not
the bottleneck): N track() calls of the benchmark's event as fast as the caller makes
them, then flush(). Reported per cap (medians over --reps): events/s over the whole
burst, milliseconds from the first call to the first delivered batch, the mean and
largest batch, CPU seconds per 100k events (the client process), and the number of
requests. The consumer's `BACKLOG_BATCH_CAP` is set
before the client is created; cap 100 (= flush_at) is the behaviour without the lever.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))


def one(url: str, n: int, cap: int, small: bool = False) -> dict[str, Any]:
    """One burst with `cap`, in this process."""
    import worker

    from segment_client import Client, _consumer

    _consumer.BACKLOG_BATCH_CAP = cap
    client = Client(worker.WRITE_KEY, host=url, max_queue_size=worker.QUEUE)
    sizes: list[int] = []
    first: list[float] = []
    inner = client.replace_transport(client._consumer.sender.transport)

    class Timed:
        def send(self, batch: Sequence[bytes], *, retry_count: int = 0,
                 timeout: float | None = None) -> None:
            inner.send(batch, retry_count=retry_count, timeout=timeout)
            if not first:
                first.append(time.perf_counter())
            sizes.append(len(batch))

        def close(self) -> None:
            inner.close()

    client.replace_transport(Timed())
    pool = ([{"sku": f"SKU-{i}", "position": i % 10} for i in range(1000)] if small
            else [worker.make_properties(i) for i in range(1000)])
    cpu0 = worker.cpu_seconds()
    t0 = time.perf_counter()
    for i in range(n):
        client.track(f"user-{i % 1000}", worker.EVENT, pool[i % 1000])
    client.flush(timeout=600)
    elapsed = time.perf_counter() - t0
    cpu = worker.cpu_seconds() - cpu0
    worker.SERVER = "sink"
    stats = worker.sink_stats(url)
    client.close_and_flush()
    return {
        "cap": cap,
        "events_per_s": stats["messages"] / elapsed,
        "cpu_s_per_100k": cpu * 100_000 / max(stats["messages"], 1),
        "first_delivery_ms": (first[0] - t0) * 1000 if first else None,
        "requests": len(sizes),
        "mean_batch": sum(sizes) / max(len(sizes), 1),
        "max_batch": max(sizes, default=0),
        "sent": n,
        "delivered": stats["messages"],
        "unique": stats["unique"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--caps", default="100,250,500,1000,2500")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--small", action="store_true",
                        help="a two-property event (~0.3 KB) instead of the rich one")
    parser.add_argument("--one", nargs=2, metavar=("URL", "CAP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.n, int(args.one[1]), args.small)), flush=True)
        return
    from run import Server

    caps = [int(c) for c in args.caps.split(",")]
    server = Server(sys.executable, "sink")
    rows: dict[int, list[dict[str, Any]]] = {cap: [] for cap in caps}
    try:
        for rep in range(args.reps):
            order = caps[rep % len(caps):] + caps[:rep % len(caps)]
            for cap in order:
                server.reset()
                out = subprocess.run(
                    [sys.executable, __file__, "--n", str(args.n), "--one", server.url,
                     str(cap), *(["--small"] if args.small else [])],
                    capture_output=True, text=True, check=True,
                )
                row = json.loads(out.stdout.strip().splitlines()[-1])
                if row["delivered"] != row["sent"] or row["unique"] != row["sent"]:
                    raise SystemExit(f"cap {cap}: lost or duplicated: {row}")
                rows[cap].append(row)
    finally:
        server.stop()
    print(f"{'cap':>6} {'events/s':>10} {'CPU s/100k':>10} {'first ms':>9} {'requests':>9} "
          f"{'mean':>7} {'max':>6}   (medians of {args.reps}, N={args.n:,}, bench/sink.py)")
    for cap in caps:
        def med(key: str, cap: int = cap) -> float:
            return float(statistics.median(r[key] for r in rows[cap]))
        print(f"{cap:>6} {med('events_per_s'):>10,.0f} {med('cpu_s_per_100k'):>10.2f} "
              f"{med('first_delivery_ms'):>9.1f} "
              f"{med('requests'):>9,.0f} {med('mean_batch'):>7.0f} {med('max_batch'):>6.0f}")


if __name__ == "__main__":
    main()
