"""Ingest: decode, check and store what clients send to `/v1/batch` and the single routes.

Each ingest request is checked (size, encoding, JSON, write key, strict validity), then
validated message by message and stored with one batched insert on the connection's
thread. (A separate writer thread was measured: the GIL hand-offs around SQLite cost
~20% more CPU per event, so the store is written inline.) Faults from the `FaultPlan`
are applied here.

Extension point: feature modules follow ingest through the store, not through this
module: `Store.add_listener(on_rows)` (also `Collector.add_listener`) is called after
every committed batch with its stored rows.

Thread-safety: `Ingest` is shared by every connection thread; its counters are guarded
by a lock.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import json
import logging
import threading
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from ._faults import Fault, FaultPlan
from ._http import Headers, HttpError, Request, Response
from ._parse import dumps_fast, loads_fast, parse_batch
from ._routes import RouteTable
from ._store import Store, StoredMessage
from ._validate import MESSAGE_TYPES, validate_message

__all__ = ["INGEST_PATHS", "MAX_MESSAGE_BYTES", "MAX_REQUEST_BYTES", "Ingest", "Validator"]

logger = logging.getLogger("segment_client.collector")

Validator = Callable[[dict[str, Any]], list[str]]

# The Tracking API's limits: 32 KB per message (and per single-message request),
# 500 KB per batch request; both answered 400 "Exceed payload limit".
MAX_MESSAGE_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
_SINGLE_ROUTES = {f"/v1/{kind}": kind for kind in MESSAGE_TYPES}
INGEST_PATHS = ("/v1/batch", "/v1/import", *_SINGLE_ROUTES)
# The violations of a message without any (shared, never modified).
_NONE: list[str] = []
_SUCCESS = json.dumps({"success": True}).encode()
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


@dataclass(frozen=True)
class _Job:
    """One request's checked messages, to validate and store."""

    received_at: str
    path: str
    single: str | None
    messages: list[tuple[Any, str]]
    validated: bool


def _refusal(exc: HttpError) -> Response:
    body = json.dumps({"success": False, "code": exc.code, "message": exc.reason}).encode()
    return Response(exc.status, body)


class Ingest:
    """The ingest routes' work and counters. Thread-safe.

    Args:
        store: where accepted messages and rejections go.
        plan: the fault rules, asked once per ingest request.
        stopping: set when the collector stops (cuts a fault's delay short).
        write_key, strict, validator, log, discard: as for `Collector`.
    """

    def __init__(
        self,
        store: Store,
        plan: FaultPlan,
        stopping: threading.Event,
        *,
        write_key: str | None = None,
        strict: bool = False,
        validator: Validator | None = None,
        log: TextIO | None = None,
        discard: bool = False,
    ) -> None:
        self.store = store
        self.plan = plan
        self.stopping = stopping
        self.write_key = write_key
        self.strict = strict
        self.validator = validator
        self.log = log
        self.discard = discard
        self._counter_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self.requests = 0
        self.faults_injected = 0
        self.fault_stored_messages = 0
        # Batch ids: unique across runs sharing a database file, cheap to make.
        self._batch_prefix = uuid.uuid4().hex[:6]
        self._batch_seq = 0

    def register(self, routes: RouteTable) -> None:
        """Add the ingest routes (POST /v1/batch, /v1/import, /v1/track, ...)."""
        for path in INGEST_PATHS:
            routes.add("POST", path, self.handle)

    def counters(self) -> dict[str, int]:
        """requests, faults_injected and fault_stored_messages."""
        with self._counter_lock:
            return {
                "requests": self.requests,
                "faults_injected": self.faults_injected,
                "fault_stored_messages": self.fault_stored_messages,
            }

    def reset_counters(self) -> None:
        """Zero the request counters (the store is cleared separately)."""
        with self._counter_lock:
            self.requests = self.faults_injected = self.fault_stored_messages = 0

    # -- the route ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """One ingest request: faults, body, checks; storing runs after the answer."""
        path = request.path
        received_at = _now()
        fault = self.plan.pick()
        if fault is not None and fault.delay and self.stopping.wait(fault.delay):
            return Response(drop=True)
        try:
            body = request.body()
        except HttpError as exc:
            self.reject(received_at, path, exc.status, exc.reason)
            response = _refusal(exc)
            return response
        with self._counter_lock:
            self.requests += 1
        if fault is not None and not fault.store and (fault.drop or fault.status):
            return self._inject(fault, path, received_at, 0)
        try:
            job = self.check(path, request.headers, body, received_at)
        except HttpError as exc:
            self.reject(received_at, path, exc.status, exc.reason)
            return _refusal(exc)
        if fault is not None and (fault.drop or fault.status):
            self.write(job)
            return self._inject(fault, path, received_at, len(job.messages))
        # Answer first, then store: the client prepares its next batch while this one is
        # written (the two processes overlap instead of taking turns). Every read waits
        # for the batches answered before it (Store.hold), so whatever was answered 200
        # is still visible to every later read.
        ticket = self.store.hold()

        def store_it() -> None:
            try:
                self.write(job)
            except Exception as exc:  # noqa: BLE001 - answered already: report, never hide
                self._store_failed(job, exc)
            finally:
                self.store.release(ticket)

        return Response(200, _SUCCESS, after=store_it)

    def _inject(self, fault: Fault, path: str, received_at: str, stored: int) -> Response:
        after = f" after storing {stored} message(s)" if fault.store else ""
        with self._counter_lock:
            self.faults_injected += 1
            self.fault_stored_messages += stored
        if fault.drop:
            self.reject(received_at, path, 0, f"injected fault: connection dropped{after}")
            return Response(drop=True)
        status = int(fault.status or 500)
        headers = []
        if fault.retry_after is not None:
            headers.append(("Retry-After", f"{fault.retry_after:g}"))
        self.reject(received_at, path, status, f"injected fault: {status}{after}")
        body = json.dumps({"success": False, "code": "injected_fault",
                           "message": f"injected fault: {status}"}).encode()
        return Response(status, body, headers=headers)

    # -- checks ---------------------------------------------------------------------------

    def reject(self, received_at: str, path: str, status: int, reason: str) -> None:
        """Record one rejected request (or message) and print it when logging."""
        self.store.add_rejection(received_at, path, status, reason)
        if self.log is not None:
            self._print(f"{received_at[11:23]}  {path:<12} rejected {status or 'drop'}: {reason}")

    def _print(self, line: str) -> None:
        assert self.log is not None
        with self._log_lock, contextlib.suppress(OSError, ValueError):
            print(line, file=self.log, flush=True)

    def _check_key(self, headers: Headers, data: dict[str, Any]) -> None:
        if self.write_key is None:
            return
        auth = headers.get("Authorization", "")
        key: str | None = None
        if auth[:6].lower() == "basic ":
            try:
                key = base64.b64decode(auth[6:].strip(), validate=True).decode().split(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                raise HttpError(401, "Authorization header is not valid Basic auth",
                                "unauthorized") from None
        elif isinstance(data.get("writeKey"), str):
            key = data["writeKey"]
        if not key:
            raise HttpError(401, "missing write key (Basic auth or writeKey in the body)",
                            "unauthorized")
        if key != self.write_key:
            raise HttpError(401, "invalid write key", "unauthorized")

    def check(self, path: str, headers: Headers, body: bytes, received_at: str) -> _Job:
        """Everything that decides the answer: size, encoding, JSON, key, strict validity.

        Returns the messages to store, or raises HttpError.
        """
        single = _SINGLE_ROUTES.get(path)
        limit = MAX_MESSAGE_BYTES if single else MAX_REQUEST_BYTES
        if len(body) > limit:
            raise HttpError(400, f"Exceed payload limit: request is over {limit} bytes",
                            "too_large")
        data_bytes = _decompress(body, headers.get("Content-Encoding", ""))
        if len(data_bytes) > limit:
            raise HttpError(400, f"Exceed payload limit: request is over {limit} bytes",
                            "too_large")
        checked = None if single else self._checked_fast(headers, data_bytes)
        if checked is None:
            checked = self._checked(headers, data_bytes, single)
        problems: list[str] | None = None
        if self.strict:
            problems = _problems(checked, single)
            if problems:
                raise HttpError(
                    400, "invalid message(s): " + " | ".join(problems), "invalid_message"
                )
        return _Job(received_at, path, single, checked, problems is not None)

    def _checked_fast(
        self, headers: Headers, data_bytes: bytes
    ) -> list[tuple[Any, str]] | None:
        """A batch decoded by orjson, each message re-encoded compactly for storage.

        None when orjson is missing or refuses the body, and when a message could be over
        the size limit as sent (whitespace or escapes the compact form does not have):
        the exact path (`_checked`) then decides, with the same outcome and messages.
        """
        if loads_fast is None:
            return None
        try:
            data = loads_fast(data_bytes)
        except ValueError:  # orjson.JSONDecodeError; the stdlib path words the error
            return None
        if type(data) is not dict:
            return None
        items = data.get("batch")
        if type(items) is not list:
            return None
        self._check_key(headers, data)
        context = data.get("context")
        if type(context) is not dict:
            context = None
        if context is not None:
            for message in items:
                if type(message) is dict and "context" not in message:
                    message["context"] = context  # batch-level context applies to each
        raws = list(map(dumps_fast, items))
        sizes = list(map(len, raws))
        # Each message as sent is at most its compact size plus everything in the body
        # that is not a compact message (framing, whitespace, longer escapes).
        slack = max(len(data_bytes) - sum(sizes), 0)
        largest = max(sizes, default=0)
        if len(data_bytes) > MAX_MESSAGE_BYTES and largest + slack > MAX_MESSAGE_BYTES:
            return None
        return list(zip(items, [raw.decode() for raw in raws], strict=True))

    def _checked(
        self, headers: Headers, data_bytes: bytes, single: str | None
    ) -> list[tuple[Any, str]]:
        """The request's messages with their JSON texts as sent (stdlib parser)."""
        try:
            text = data_bytes.decode("utf-8-sig")
            if single:
                value, items = json.loads(text), None
                if not isinstance(value, dict):
                    raise TypeError(type(value).__name__)
                data: dict[str, Any] = value
            else:
                data, items = parse_batch(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"malformed JSON: {exc}", "invalid_json") from None
        except TypeError as exc:
            raise HttpError(400, f"the body must be a JSON object, got {exc}") from None
        self._check_key(headers, data)
        if single:
            messages: list[tuple[Any, str | None]] = [(data, None)]
        elif items is None:
            raise HttpError(400, "the body needs a batch array: {\"batch\": [...]}")
        else:
            messages = list(items)
        context = None if single else data.get("context")
        checked: list[tuple[Any, str]] = []
        for index, (message, raw) in enumerate(messages):
            if isinstance(message, dict):
                if single and "type" not in message:
                    message["type"] = single
                    raw = None
                if isinstance(context, dict) and "context" not in message:
                    message["context"] = context  # batch-level context applies to each
                    raw = None
            if raw is None:
                raw = _DUMPS(message)
            # len() counts characters; only a long text needs its exact UTF-8 size.
            if len(raw) * 4 > MAX_MESSAGE_BYTES and len(raw.encode()) > MAX_MESSAGE_BYTES:
                raise HttpError(
                    400,
                    f"Exceed payload limit: message {index} is {len(raw.encode())} bytes "
                    f"(limit {MAX_MESSAGE_BYTES})",
                    "too_large",
                )
            checked.append((message, raw))
        return checked

    # -- storing --------------------------------------------------------------------------

    def write(self, job: _Job) -> None:
        """Validate (unless done already) and store one checked request."""
        validator = self.validator
        problems: list[str] = []
        if job.validated or self.discard:
            accepted: list[StoredMessage] = [(m, raw, _NONE) for m, raw in job.messages]
        else:
            accepted = []
            append = accepted.append
            single = job.single
            for index, (message, raw) in enumerate(job.messages):
                reasons = validate_message(message, single)
                if reasons:
                    problems.append(
                        f"message {index}{_describe(message)}: {'; '.join(reasons)}"
                    )
                else:
                    append((message, raw, _NONE))
        if validator is not None:
            accepted = [(m, raw, self._violations(m)) for m, raw, _ in accepted]
        with self._counter_lock:
            self._batch_seq += 1
            batch_id = f"{self._batch_prefix}-{self._batch_seq}"
        duplicates = 0
        if accepted:
            _, duplicates = self.store.add_batch(batch_id, job.received_at, accepted)
        for problem in problems:
            self.reject(job.received_at, job.path, 200, f"dropped invalid {problem}")
        if self.log is not None and accepted:
            self._print(_batch_line(job.received_at, job.path, batch_id, accepted, duplicates))

    def _store_failed(self, job: _Job, exc: Exception) -> None:
        """A batch answered 200 could not be stored (a locked or full database file)."""
        reason = (f"answered 200 but stored none of {len(job.messages)} message(s): "
                  f"{type(exc).__name__}: {exc}")
        logger.error("collector: %s", reason)
        with contextlib.suppress(Exception):
            self.reject(job.received_at, job.path, 500, reason)

    def _violations(self, message: dict[str, Any]) -> list[str]:
        if self.validator is None:
            return []
        try:
            return [str(v) for v in self.validator(message)]
        except Exception as exc:  # noqa: BLE001 - a broken plan must not break ingestion
            return [f"validator raised {type(exc).__name__}: {exc}"]


def _problems(checked: list[tuple[Any, str]], single: str | None) -> list[str]:
    problems = []
    for index, (message, _) in enumerate(checked):
        reasons = validate_message(message, single)
        if reasons:
            problems.append(f"message {index}{_describe(message)}: {'; '.join(reasons)}")
    return problems


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise HttpError(415, f"unsupported Content-Encoding {encoding!r} (gzip or deflate)")
    # Bounded: a gzip bomb stops one byte past the request limit.
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, MAX_REQUEST_BYTES + 1)
    except zlib.error as exc:
        raise HttpError(400, f"body is not valid {encoding}: {exc}") from None
    return data


def _describe(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    parts = [str(message.get("type", "?"))]
    if message.get("messageId"):
        parts.append(f"messageId={message['messageId']}")
    return f" ({', '.join(parts)})"


def _batch_line(
    received_at: str, path: str, batch_id: str, accepted: list[StoredMessage], duplicates: int
) -> str:
    counts: dict[str, int] = {}
    for message, _, _ in accepted:
        kind = str(message.get("type"))
        counts[kind] = counts.get(kind, 0) + 1
    by_type = " ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    dup = f"  {duplicates} duplicate(s)" if duplicates else ""
    return (
        f"{received_at[11:23]}  {path:<12} batch {batch_id}  {len(accepted):>4} msg  "
        f"{by_type}{dup}"
    )
