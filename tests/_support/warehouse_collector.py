"""A collector with a warehouse loader process, for the test that SIGKILLs it.

    python tests/_support/warehouse_collector.py STORE.sqlite3 WAREHOUSE_URL

Prints `PORT <port> LOADER <pid>` once serving, then serves until killed.
"""

from __future__ import annotations

import sys
import threading

from segment_client.collector import Collector, Destinations


def main() -> None:
    store, url = sys.argv[1], sys.argv[2]
    with Collector(db=store) as collector, Destinations(collector, warehouse=url) as dest:
        pid = getattr(dest.loader, "pid", None)
        print(f"PORT {collector.port} LOADER {pid}", flush=True)
        threading.Event().wait()  # until killed


if __name__ == "__main__":
    main()
