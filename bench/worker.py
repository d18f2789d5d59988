"""One benchmark measurement in its own process; prints one JSON line on stdout.

    python bench/worker.py SCENARIO CLIENT --url http://127.0.0.1:PORT --n N

Scenarios: `caller` (ns per track() while the consumer sends), `throughput` (N tracks
until the sink holds all of them; events/s and CPU s), `rss` (bytes of RSS per queued
message while the sender is blocked), `json` and `rawpost` (the machine's ceilings; the
client argument is ignored). Each client runs with its own defaults except the host
and a queue large enough that nothing is dropped. Run by bench/run.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import http.client
import json
import os
import resource
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

WRITE_KEY = "bench-write-key"
#: segment-client as installed with [fast]; without orjson; with the on-disk spool; with
#: every message validated against bench/plan.json.
OUR_VARIANTS = (
    "segment-client", "segment-client-stdlib", "segment-client-spool", "segment-client-plan"
)
PLAN = Path(__file__).resolve().parent / "plan.json"
EVENT = "Order Completed"
QUEUE = 250_000  # never the limit: a dropped message would fail the run
_PAID_AT = dt.datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=dt.timezone.utc)


def make_properties(i: int) -> dict[str, Any]:
    """A realistic 10-key properties dict: nested dict, list, datetime."""
    return {
        "order_id": f"ord-{i:08d}",
        "revenue": 59.99 + i % 100,
        "currency": "EUR",
        "quantity": i % 5 + 1,
        "coupon": "SPRING24" if i % 3 else None,
        "is_gift": i % 7 == 0,
        "paid_at": _PAID_AT,
        "tags": ["spring", "sale", f"cohort-{i % 10}"],
        "items": [
            {"sku": "SKU-1001", "name": "Trail shoes", "price": 49.99, "quantity": 1},
            {"sku": f"SKU-{2000 + i % 50}", "name": "Socks", "price": 5.0, "quantity": 2},
        ],
        "shipping": {"method": "express", "address": {"city": "Berlin", "zip": "10115"}},
    }


# -- the clients -------------------------------------------------------------------------


class Adapter:
    """Uniform face of one client: track(i, properties), flush(), kill()."""

    track: Callable[[int, dict[str, Any]], object]
    flush: Callable[[], object]


def make_adapter(name: str, url: str) -> Adapter:
    a = Adapter()
    if name in OUR_VARIANTS:
        if name == "segment-client-stdlib":
            sys.modules["orjson"] = None  # type: ignore[assignment]  # as if not installed
        from segment_client import Client, _json

        if (_json._fast_dumps is None) != (name == "segment-client-stdlib"):
            state = "missing" if _json._fast_dumps is None else "present"
            raise SystemExit(f"{name}: orjson is {state} (pip install -e '.[fast]')")

        options: dict[str, Any] = {}
        if name == "segment-client-spool":
            # Removed when the worker process exits (the object lives as long as `a`).
            a.spool = tempfile.TemporaryDirectory(prefix="bench-spool-")  # type: ignore[attr-defined]
            options["spool_dir"] = a.spool.name  # type: ignore[attr-defined]
        elif name == "segment-client-plan":
            options["tracking_plan"] = str(PLAN)
            options["on_violation"] = "raise"  # a violation would end the run: none expected
        ours = Client(WRITE_KEY, host=url, max_queue_size=QUEUE, **options)
        a.track = lambda i, p: ours.track(f"user-{i % 1000}", EVENT, p)
        a.flush = ours.flush
    elif name == "segment-analytics-python":
        from segment.analytics import Client as SegmentClient

        seg = SegmentClient(WRITE_KEY, host=url, max_queue_size=QUEUE)
        a.track = lambda i, p: seg.track(f"user-{i % 1000}", EVENT, p)
        a.flush = seg.flush
    elif name == "rudder-sdk-python":
        from rudderstack.analytics.client import Client as RudderClient

        rud = RudderClient(WRITE_KEY, host=url, max_queue_size=QUEUE)
        a.track = lambda i, p: rud.track(f"user-{i % 1000}", EVENT, p)
        a.flush = rud.flush
    elif name == "posthog":
        from posthog import Posthog

        ph = Posthog(WRITE_KEY, host=url, max_queue_size=QUEUE)
        a.track = lambda i, p: ph.capture(EVENT, distinct_id=f"user-{i % 1000}", properties=p)
        a.flush = lambda: ph.flush(timeout_seconds=600)
    else:
        raise SystemExit(f"unknown client {name!r}")
    return a


# -- helpers -----------------------------------------------------------------------------


SERVER = "sink"  # or "collector": the project's own collector (set from --server)


_stats_conn: http.client.HTTPConnection | None = None


def sink_stats(url: str) -> dict[str, int]:
    """Messages and distinct ids the server holds, from bench/sink.py or the collector.

    One keep-alive connection for all polls: a new connection every 2 ms would cost the
    server (a thread per connection in the collector) as much as the traffic measured.
    """
    global _stats_conn
    parts = urlsplit(url)
    for attempt in (1, 2):
        if _stats_conn is None:
            _stats_conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            _stats_conn.request("GET", "/v1/stats" if SERVER == "collector" else "/_stats")
            result: dict[str, int] = json.loads(_stats_conn.getresponse().read())
            break
        except (OSError, http.client.HTTPException):
            _stats_conn.close()
            _stats_conn = None
            if attempt == 2:
                raise
    if SERVER == "collector":
        return {"messages": result["total"], "unique": result["unique"],
                "requests": result["batches"]}
    return result


def wait_for_messages(url: str, n: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        stats = sink_stats(url)
        if stats["messages"] >= n or time.monotonic() > deadline:
            return stats
        time.sleep(0.002)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- scenarios ---------------------------------------------------------------------------


def caller(client: str, url: str, n: int) -> dict[str, Any]:
    adapter = make_adapter(client, url)
    warmup = 1000
    pool = [make_properties(i) for i in range(1000)]
    track = adapter.track
    clock = time.perf_counter_ns
    for i in range(warmup):
        track(i, pool[i % 1000])
    samples = []
    append = samples.append
    for i in range(n):
        props = pool[i % 1000]
        t0 = clock()
        track(i, props)
        append(clock() - t0)
    adapter.flush()
    stats = wait_for_messages(url, warmup + n, 60)
    samples.sort()
    return {
        "median_ns": samples[len(samples) // 2],
        "p99_ns": samples[int(len(samples) * 0.99)],
        "sent": warmup + n,
        "delivered": stats["messages"],
    }


def throughput(client: str, url: str, n: int) -> dict[str, Any]:
    adapter = make_adapter(client, url)
    pool = [make_properties(i) for i in range(1000)]
    track = adapter.track
    gc.collect()
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    for i in range(n):
        track(i, pool[i % 1000])
    t_calls = time.perf_counter() - t0
    adapter.flush()
    stats = wait_for_messages(url, n, 120)
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    return {
        "events_per_s": stats["messages"] / elapsed,
        "seconds": elapsed,
        "calls_seconds": t_calls,
        "cpu_s_per_100k": cpu * 100_000 / max(stats["messages"], 1),
        "sent": n,
        "delivered": stats["messages"],
        "unique": stats["unique"],
        "requests": stats["requests"],
    }


def rss(client: str, url: str, n: int) -> dict[str, Any]:
    # A listener that never accepts: connections complete in the kernel, requests are
    # written, and no answer comes, so the sender stays blocked (a paused collector).
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    blocked_url = f"http://127.0.0.1:{hole.getsockname()[1]}"
    adapter = make_adapter(client, blocked_url)
    track = adapter.track
    for i in range(1000):
        track(i, make_properties(i))
    time.sleep(0.3)  # let the consumer take its first batch and block on the socket
    gc.collect()
    before = rss_bytes()
    for i in range(n):
        track(i, make_properties(i))
    gc.collect()
    after = rss_bytes()
    result = {"bytes_per_message": (after - before) / n, "rss_before": before,
              "rss_after": after, "queued": n}
    print(json.dumps(result), flush=True)
    os._exit(0)  # the blocked sender would hold the exit for its request timeout


def json_ceiling(n: int) -> dict[str, Any]:
    props = make_properties(7)
    message = {
        "type": "track",
        "messageId": str(uuid.uuid4()),
        "timestamp": "2024-05-01T12:30:15.250Z",
        "context": {"library": {"name": "bench", "version": "0"}},
        "integrations": {},
        "userId": "user-7",
        "event": EVENT,
        "properties": props,
    }
    dumps = json.dumps
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = clock()
        dumps(message, default=str)
        samples.append(clock() - t0)
    samples.sort()
    return {"median_ns": samples[len(samples) // 2], "bytes": len(dumps(message, default=str))}


def rawpost_ceiling(url: str, n: int, size: int = 100) -> dict[str, Any]:
    """Keep-alive POSTs of one pre-encoded `size`-message batch: the receiver's ceiling
    for a client that costs nothing."""
    batch = []
    for i in range(size):
        batch.append(
            {
                "type": "track",
                "messageId": str(uuid.uuid4()),
                "timestamp": "2024-05-01T12:30:15.250Z",
                "context": {"library": {"name": "bench", "version": "0"}},
                "integrations": {},
                "userId": f"user-{i}",
                "event": EVENT,
                "properties": make_properties(i),
            }
        )
    body = json.dumps(
        {"batch": batch, "sentAt": "2024-05-01T12:30:15.250Z", "writeKey": WRITE_KEY},
        default=str,
    ).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Basic YmVuY2g6"}
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    requests = max(1, n // size)
    t0 = time.perf_counter()
    for _ in range(requests):
        conn.request("POST", "/v1/batch", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"raw POST got {response.status}")
    elapsed = time.perf_counter() - t0
    conn.close()
    stats = sink_stats(url)
    return {
        "events_per_s": requests * size / elapsed,
        "sent": requests * size,
        "delivered": stats["messages"],
        "body_bytes": len(body),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=["caller", "throughput", "rss", "json", "rawpost"])
    parser.add_argument("client")
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--server", choices=["sink", "collector"], default="sink")
    parser.add_argument("--batch", type=int, default=100, help="rawpost: messages per request")
    args = parser.parse_args()
    global SERVER
    SERVER = args.server
    if args.scenario == "caller":
        result = caller(args.client, args.url, args.n)
    elif args.scenario == "throughput":
        result = throughput(args.client, args.url, args.n)
    elif args.scenario == "rss":
        result = rss(args.client, args.url, args.n)
    elif args.scenario == "json":
        result = json_ceiling(args.n)
    else:
        result = rawpost_ceiling(args.url, args.n, args.batch)
    print(json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip peers' atexit joins; everything measured is already delivered


if __name__ == "__main__":
    main()
