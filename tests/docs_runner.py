"""Runs the python blocks of one docs page in a fresh interpreter (used by test_docs.py).

Usage: python docs_runner.py STUB_URL < blocks.json > results.json

Input: a JSON list of {"where": "docs/page.md:12", "code": "..."}. The blocks run in
order in one namespace. Before they run, resolving any host but the loopback fails and
every HTTPTransport (and subclass) sends to STUB_URL whatever URL it was given, so no
block can reach the real Segment API. Output: a JSON object with "outputs" (each block's
stdout), "error" (the traceback of the first failing block, or null) and "closed" (for
every consumer left open, whether closing it delivered everything).
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import sys
import traceback
from typing import Any

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _guard_network(stub_url: str) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOCAL_HOSTS:
            raise OSError(f"docs tests reach only 127.0.0.1, not {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = local_only

    from segment_client import _transport

    real_init = _transport.HTTPTransport.__init__

    def to_stub(self: Any, write_key: str, *, url: str, **options: Any) -> None:
        real_init(self, write_key, url=stub_url + "/v1/batch", **options)

    _transport.HTTPTransport.__init__ = to_stub  # type: ignore[method-assign]


def main() -> None:
    stub_url = sys.argv[1]
    blocks = json.load(sys.stdin)
    real_stdout = sys.stdout
    _guard_network(stub_url)
    from segment_client._consumer import _live

    namespace: dict[str, Any] = {"__name__": "__docs__"}
    outputs: list[str] = []
    error = None
    for block in blocks:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(block["code"], block["where"], "exec"), namespace)
        except BaseException:
            error = f"{block['where']}:\n{traceback.format_exc()}"
            break
        finally:
            outputs.append(out.getvalue())
    closed = {
        repr(consumer): consumer.close(5)
        for consumer in list(_live)
        if not consumer._close_started
    }
    json.dump({"outputs": outputs, "error": error, "closed": closed}, real_stdout)


if __name__ == "__main__":
    main()
