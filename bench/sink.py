"""A minimal keep-alive HTTP sink that counts delivered messages exactly.

The benchmark's stand-in collector and its throughput sink: any POST whose JSON body has
a `batch` list is accepted with 200 and its messages are counted (and their ids kept, so
duplicates show). `GET /_stats` returns the counts; `POST /_reset` zeroes them.
Accepts gzip bodies. Run as its own process:

    python bench/sink.py --port 0 --port-file PATH

It prints nothing; the chosen port is written to PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import signal
from typing import Any

_ID = re.compile(rb'"(?:messageId|uuid)": ?"([^"]*)"')
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Counts:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.messages = 0
        self.requests = 0
        self.bad_requests = 0
        self.ids: set[str] = set()

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "messages": self.messages,
                "unique": len(self.ids),
                "requests": self.requests,
                "bad_requests": self.bad_requests,
            }
        ).encode()

    def add(self, body: bytes, encoding: str) -> bool:
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
        except (OSError, EOFError):
            self.bad_requests += 1
            return False
        if not body.startswith(b'{"batch":[') and b'"batch"' not in body[:200]:
            self.bad_requests += 1
            return False
        # One id per message: Segment-style clients send messageId, posthog sends uuid.
        # A regex over the body is ~10x cheaper than json.loads, which would make the
        # sink, not the clients, the limit; a JSON string cannot contain the raw pattern.
        ids = _ID.findall(body)
        self.requests += 1
        self.messages += len(ids)
        self.ids.update(ids)
        return True


class Http(asyncio.Protocol):
    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.buffer = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            method, path, _ = head[0].split(" ", 2)
            length = 0
            encoding = ""
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "content-encoding":
                    encoding = value.strip().lower()
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.transport.write(self.handle(method, path, body, encoding))

    def handle(self, method: str, path: str, body: bytes, encoding: str) -> bytes:
        if path == "/_stats":
            payload = self.counts.as_json()
            return (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(payload)).encode()
                + b"\r\n\r\n"
                + payload
            )
        if path == "/_reset":
            self.counts.reset()
            return _OK
        if method != "POST":
            return _BAD
        return _OK if self.counts.add(body, encoding) else _BAD


async def serve(port: int, port_file: str | None) -> None:
    loop = asyncio.get_running_loop()
    counts = Counts()
    server = await loop.create_server(lambda: Http(counts), "127.0.0.1", port, backlog=128)
    actual = server.sockets[0].getsockname()[1]
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(actual))
        os.replace(tmp, port_file)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.port_file))


if __name__ == "__main__":
    main()
