"""Ceiling of the local collector in events/s: raw keep-alive POSTs of 100-message batches.

Usage: python bench/collector_ceiling.py [--seconds 5] [--connections 1] [--gzip]
                                         [--db :memory:] [--in-process] [--discard]
                                         [--no-orjson] [--unique] [--warehouse URL]
                                         [--rate EVENTS_PER_SECOND] [--usage]

The collector runs in its own process (as `segment-client collector` would); the bodies
are built once, so the sending loop costs little: the number is the collector's (HTTP,
parse, validate, insert). `--in-process` shares one interpreter (and its GIL) instead.

`--warehouse URL` attaches routing, usage and a warehouse loader (`Destinations`) to the
collector and reports the loading lag sampled during the run and the time to catch up
after it; it implies `--unique` (every message its own messageId, one bytes.replace per
request), since a warehouse skips repeated messageIds and would look faster than it is.
Without `--db` it stores in a temporary file, as `segment-client collector` does, so the
loader runs in its own process (with `--db :memory:` it is a thread of the collector);
the CPU time of that process is printed apart.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import multiprocessing
import os
import sys
import threading
import time
import uuid
from typing import Any

# --no-orjson: the collector as installed without the `fast` extra. Set before the import
# and in the environment, so that the collector's own (spawned) process sees it too.
if "--no-orjson" in sys.argv:
    os.environ["SEGMENT_BENCH_NO_ORJSON"] = "1"
if os.environ.get("SEGMENT_BENCH_NO_ORJSON"):
    sys.modules["orjson"] = None  # type: ignore[assignment]

from segment_client.collector import Collector, Destinations

ID_SLOT = b"ID-SLOT-0000000000"  # replaced per request by --unique


def make_body(batch_size: int, *, compress: bool) -> tuple[bytes, list[bytes]]:
    # messageIds differ per request so no message counts as a duplicate... but bodies are
    # prebuilt: a fixed pool of 50 bodies is rotated; duplicates do not change the cost.
    messages = []
    for i in range(batch_size):
        messages.append({
            "type": "track",
            "event": "Order Completed",
            "userId": f"user-{i % 17}",
            "messageId": str(uuid.uuid4()),
            "timestamp": "2024-05-01T12:00:00.000Z",
            "properties": {"order_id": f"o-{i}", "revenue": 59.99, "currency": "USD",
                           "products": [{"sku": "sku-1", "price": 19.99, "quantity": 3}]},
            "context": {"library": {"name": "segment-client-python", "version": "0.1.0"},
                        "ip": "203.0.113.9"},
            "integrations": {},
        })
    body = json.dumps({"batch": messages, "sentAt": "2024-05-01T12:00:00.000Z",
                       "writeKey": "bench"}).encode()
    return (gzip.compress(body, 1) if compress else body), messages  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--db", help="store path (default :memory:; a temporary file with "
                        "--warehouse)")
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--discard", action="store_true", help="count only, no SQLite")
    parser.add_argument("--no-orjson", action="store_true",
                        help="hide orjson from the collector (the stdlib parser)")
    parser.add_argument("--unique", action="store_true",
                        help="a fresh messageId for every message (no duplicates)")
    parser.add_argument("--warehouse", help="attach a warehouse, e.g. sqlite:/tmp/wh.sqlite3")
    parser.add_argument("--usage", action="store_true",
                        help="attach routing and usage counting only (what the "
                             "`segment-client collector` command always runs)")
    parser.add_argument("--rate", type=float,
                        help="send at most this many events per second (default: flat out)")
    args = parser.parse_args()
    if args.warehouse:
        args.unique = True
    if args.db is None:
        args.db = ":memory:"
        if args.warehouse:
            import tempfile

            args.db = os.path.join(tempfile.mkdtemp(prefix="bench-store-"), "store.sqlite3")
    if args.unique and args.gzip:
        parser.error("--unique rewrites bodies per request: not with --gzip")
    if args.unique:
        bodies = [unique_template(args.batch)]
    else:
        bodies = [make_body(args.batch, compress=args.gzip)[0] for _ in range(50)]
    headers = {"Content-Type": "application/json"}
    if args.gzip:
        headers["Content-Encoding"] = "gzip"
    if args.in_process:
        with Collector(db=args.db, discard=args.discard) as collector:
            destinations = (Destinations(collector, warehouse=args.warehouse)
                            if args.warehouse or args.usage else None)
            run(args, bodies, headers, collector.port)
            if destinations is not None:
                destinations.close()
        return
    ready = multiprocessing.get_context("spawn").Queue()
    stopper = multiprocessing.get_context("spawn").Event()
    child = multiprocessing.get_context("spawn").Process(
        target=serve, args=(args.db, args.discard, ready, stopper, args.warehouse, args.usage)
    )
    child.start()
    try:
        events = run(args, bodies, headers, ready.get(timeout=30))
    finally:
        stopper.set()
    cpu = ready.get(timeout=30)
    loader_cpu = ready.get(timeout=30)
    child.join(10)
    if loader_cpu is not None:
        print(f"loader process CPU: {loader_cpu:.2f}s for {events} events: "
              f"{loader_cpu / events * 1e6:.1f} CPU-us per event")
    # Wall-clock numbers depend on what else the machine runs; CPU seconds of the
    # collector process give its ceiling on one dedicated core.
    print(f"collector CPU: {cpu:.2f}s for {events} events: "
          f"{events / cpu:,.0f} events per CPU-second")


def unique_template(batch_size: int) -> bytes:
    body = json.loads(make_body(batch_size, compress=False)[0])
    for i, message in enumerate(body["batch"]):
        message["messageId"] = f"{ID_SLOT.decode()}-{i:04d}"
    return json.dumps(body).encode()


def serve(
    db: str, discard: bool, ready: multiprocessing.Queue[int], stopper: threading.Event,
    warehouse: str | None = None, usage: bool = False,
) -> None:
    with Collector(db=db, discard=discard) as collector:
        destinations = (Destinations(collector, warehouse=warehouse)
                        if warehouse or usage else None)
        start = time.process_time()
        ready.put(collector.port)
        stopper.wait()
        ready.put(time.process_time() - start)
        pid = getattr(destinations.loader, "pid", None) if destinations else None
        ready.put(process_cpu(pid) if pid else None)
        if destinations is not None:
            destinations.close()


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of another process (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats(port: int) -> dict[str, int]:
    return get(port, "/v1/stats")


def get(port: int, path: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", path)
    data: dict[str, Any] = json.loads(conn.getresponse().read())
    conn.close()
    return data


def run(args: argparse.Namespace, bodies: list[bytes], headers: dict[str, str],
        port: int) -> int:
    if True:
        stop = time.perf_counter() + args.seconds
        counts = [0] * args.connections

        def loop(slot: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port)
            n = 0
            # --rate: each connection sends its share, one batch at a time, on schedule.
            interval = args.batch * args.connections / args.rate if args.rate else 0.0
            began = time.perf_counter()
            while time.perf_counter() < stop:
                if interval:
                    wait = began + n * interval - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                body = bodies[n % len(bodies)]
                if args.unique:
                    body = body.replace(ID_SLOT, b"%02d-%015d" % (slot, n))
                conn.request("POST", "/v1/batch", body, headers)
                response = conn.getresponse()
                response.read()
                assert response.status == 200, response.status
                n += 1
            counts[slot] = n
            conn.close()

        lags: list[dict[str, float]] = []
        sampling = threading.Event()

        def sample() -> None:
            # The loader's lag as the read API reports it, twice a second during the run.
            while not sampling.wait(0.5):
                lags.append(get(port, "/v1/warehouse"))

        start = time.perf_counter()
        threads = [threading.Thread(target=loop, args=(i,)) for i in range(args.connections)]
        sampler = threading.Thread(target=sample)
        if args.warehouse:
            sampler.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        if args.warehouse:
            sampling.set()
            sampler.join()
            ended = time.perf_counter()
            while (status := get(port, "/v1/warehouse"))["lag_rows"]:
                time.sleep(0.05)
            caught_up = time.perf_counter() - ended
            print(f"warehouse {args.warehouse}: lag during the run: max "
                  f"{max((s['lag_rows'] for s in lags), default=0):,.0f} rows, max "
                  f"{max((s['lag_seconds'] for s in lags), default=0):.2f}s "
                  f"({len(lags)} samples); caught up {caught_up:.2f}s after the run; "
                  f"{status['rows_written']:,} rows written; error {status['error']}")
        requests = sum(counts)
        totals = stats(port)
        assert totals["total"] == requests * args.batch, totals
        print(f"{requests} requests x {args.batch} messages in {elapsed:.2f}s over "
              f"{args.connections} connection(s), gzip={args.gzip}, "
              f"{'discard' if args.discard else f'db={args.db}'}, "
              f"{'stdlib parser' if args.no_orjson else 'orjson'}, "
              f"{'in-process' if args.in_process else 'separate process'}: "
              f"{requests * args.batch / elapsed:,.0f} events/s, "
              f"{requests / elapsed:,.0f} requests/s")
        return requests * args.batch
    return 0


if __name__ == "__main__":
    main()
