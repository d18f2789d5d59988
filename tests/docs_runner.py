"""Runs the blocks of one docs page in a fresh interpreter (used by test_docs.py).

Usage: python docs_runner.py STUB_URL < steps.json > results.json

Input: a JSON list of steps in page order, each {"where": "docs/page.md:12", "code":
"..."} (a python block) or {"where": ..., "argv": [...]} (a `segment-client` command,
run in this process through the command's own `main`). Python blocks share one
namespace; the working directory is importable. Before anything runs, resolving any host
but the loopback fails, and every HTTPTransport (and subclass) sends to STUB_URL
whatever URL it was given, unless it is the URL of a `Collector` started in this
process: no step can reach the real Segment API, nor a collector another program runs
on a well-known port. Output: a JSON object with "results" (per step: "stdout", and
for a command "status" and "stderr"), "error" (the traceback of the first failing
python block, or null; later steps do not run) and "closed" (for every consumer left
open, whether closing it delivered everything).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sys
import traceback
from typing import Any
from urllib.parse import urlsplit

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _guard_network(stub_url: str) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOCAL_HOSTS:
            raise OSError(f"docs tests reach only 127.0.0.1, not {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = local_only

    from segment_client._transports import _http as _transport
    from segment_client.collector import _server

    started: set[str] = set()
    real_start = _server.Collector.start

    def start_and_remember(self: Any) -> str:
        url: str = real_start(self)
        started.add(_origin(url))
        return url

    _server.Collector.start = start_and_remember  # type: ignore[method-assign]

    real_init = _transport.HTTPTransport.__init__

    def to_stub(self: Any, write_key: str, *, url: str, **options: Any) -> None:
        if _origin(url) not in started:
            url = stub_url + "/v1/batch"
        real_init(self, write_key, url=url, **options)

    _transport.HTTPTransport.__init__ = to_stub  # type: ignore[method-assign]


def _run_command(argv: list[str]) -> dict[str, Any]:
    from segment_client._cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # --help, --version
            status = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # what the installed command would print before exiting 1
            traceback.print_exc()
            status = 1
    return {"stdout": out.getvalue(), "status": status, "stderr": err.getvalue()}


def main() -> None:
    stub_url = sys.argv[1]
    steps = json.load(sys.stdin)
    real_stdout = sys.stdout
    sys.path.insert(0, os.getcwd())  # modules a page writes (typegen) are importable
    _guard_network(stub_url)
    from segment_client._process import live

    namespace: dict[str, Any] = {"__name__": "__docs__"}
    results: list[dict[str, Any]] = []
    error = None
    for step in steps:
        if "argv" in step:
            results.append(_run_command(step["argv"]))
            continue
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(step["code"], step["where"], "exec"), namespace)
        except BaseException:
            error = f"{step['where']}:\n{traceback.format_exc()}"
            break
        finally:
            results.append({"stdout": out.getvalue(), "status": None})
    consumers: list[Any] = live()
    closed = {
        repr(consumer): consumer.close(5)
        for consumer in consumers
        if not consumer._close_started
    }
    json.dump({"results": results, "error": error, "closed": closed}, real_stdout)


if __name__ == "__main__":
    main()
