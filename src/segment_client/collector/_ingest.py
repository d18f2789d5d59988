"""Ingest: decode, check and store what clients send to `/v1/batch` and the single routes.

Each ingest request is checked (size, encoding, nesting, JSON, write key, message count
and size, strict validity), then validated message by message and stored, with the
rejections it causes, in one transaction; the answer (200) is sent only once that is
committed (group commit in the store shares one transaction among the requests that
arrive together). Faults from the `FaultPlan` are applied here.

Hostile input is bounded: a body is refused before parsing when it nests deeper than
the shared limit (`segment_client._json.MAX_DEPTH`, the message being level 1) or its
brackets do not pair up; a batch stops being parsed past `MAX_BATCH_MESSAGES`; so work
and memory stay a small multiple of the (at most 500 KB) body. A lone surrogate
(`"\\ud800"`, which UTF-8 cannot hold) is replaced by U+FFFD, as Segment's API does, and
the message stored. A `writeKey` inside a message is removed before it is stored.

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

from segment_client._json import MAX_DEPTH

from ._faults import Fault, FaultPlan
from ._http import Headers, HttpError, Request, Response
from ._parse import (
    TooManyItems,
    depth_exceeds,
    dumps_fast,
    fix_surrogates,
    has_surrogate_escape,
    loads_fast,
    nesting_refusal,
    parse_batch,
)
from ._routes import RouteTable
from ._store import RejectionRow, Store, StoredMessage, StoreError
from ._validate import MESSAGE_TYPES, validate_message

__all__ = [
    "INGEST_PATHS",
    "MAX_BATCH_MESSAGES",
    "MAX_MESSAGE_BYTES",
    "MAX_REQUEST_BYTES",
    "Ingest",
    "Validator",
    "now_iso",
]

logger = logging.getLogger("segment_client.collector")

Validator = Callable[[dict[str, Any]], list[str]]

# The Tracking API's limits: 32 KB per message (and per single-message request),
# 500 KB per batch request; both answered 400 "Exceed payload limit".
MAX_MESSAGE_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
# Messages per batch request (the wire format's limit; clients never send more).
MAX_BATCH_MESSAGES = 2500
_SINGLE_ROUTES = {f"/v1/{kind}": kind for kind in MESSAGE_TYPES}
# analytics.js posts to one-letter routes (`/v1/t` for a track, ...; `/v1/b` a batch).
_SINGLE_ROUTES.update({f"/v1/{kind[0]}": kind for kind in MESSAGE_TYPES})
INGEST_PATHS = ("/v1/batch", "/v1/import", "/v1/b", *_SINGLE_ROUTES)
# The violations of a message without any (shared, never modified).
_NONE: list[str] = []
_SUCCESS = json.dumps({"success": True}).encode()
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def now_iso() -> str:
    """Now, as the collector stamps `receivedAt`."""
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
            routes.add("POST", path, self.handle, access="ingest")

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
        """One ingest request: faults, body, checks, then store; 200 once committed."""
        path = request.path
        received_at = now_iso()
        fault = self.plan.pick()
        if fault is not None and fault.delay and self.stopping.wait(fault.delay):
            return Response(drop=True)
        try:
            body = request.body()
        except HttpError as exc:
            self.reject(received_at, path, exc.status, exc.reason)
            return _refusal(exc)
        with self._counter_lock:
            self.requests += 1
        if fault is not None and not fault.store and (fault.drop or fault.status):
            return self._inject(fault, path, received_at, 0)
        try:
            job = self.check(path, request.headers, body, received_at)
        except HttpError as exc:
            self.reject(received_at, path, exc.status, exc.reason)
            return _refusal(exc)
        try:
            self.write(job)
        except StoreError as exc:
            return self._store_failed(job, exc)
        if fault is not None and (fault.drop or fault.status):
            return self._inject(fault, path, received_at, len(job.messages))
        return Response(200, _SUCCESS)

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
        try:
            self.store.add_rejection(received_at, path, status, reason)
        except StoreError:
            logger.exception("collector: could not record a rejection: %s", reason)
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
        # orjson stops by itself at 1,024 levels (bounded); the fast path then checks
        # each message's depth. The stdlib parser gets only bodies scanned first.
        checked = None if single else self._checked_fast(headers, data_bytes)
        if checked is None:
            # The message is level 1; in a batch body it sits two levels down.
            _check_nesting(nesting_refusal(data_bytes, MAX_DEPTH if single else MAX_DEPTH + 2))
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
        _check_count(len(items))
        context = data.get("context")
        if type(context) is not dict:
            context = None
        else:
            _check_context(context)
        for message in items:
            if type(message) is dict:
                if context is not None and "context" not in message:
                    message["context"] = context  # batch-level context applies to each
                if "writeKey" in message:
                    del message["writeKey"]  # a credential: never stored or served
        try:
            raws = list(map(dumps_fast, items))
        except TypeError:  # orjson.JSONEncodeError: nesting past 254 levels
            return None  # the exact path scans the body and words the refusal
        for raw in raws:
            # A message cannot nest deeper than it has openers (the usual case, in C).
            if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:
                _check_nesting(nesting_refusal(raw, MAX_DEPTH))
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
                data, items = parse_batch(text, MAX_BATCH_MESSAGES)
        except TooManyItems:
            raise _too_many() from None
        except UnicodeDecodeError as exc:
            raise HttpError(400, f"the body is not valid UTF-8: {exc.reason} at byte "
                            f"{exc.start}", "invalid_encoding") from None
        except ValueError as exc:
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
        surrogates = has_surrogate_escape(text)
        context = None if single else data.get("context")
        if isinstance(context, dict):
            _check_context(context)
            if surrogates:
                context, _ = fix_surrogates(context)
        checked: list[tuple[Any, str]] = []
        for index, (message, raw) in enumerate(messages):
            if isinstance(message, dict):
                if single and "type" not in message:
                    message["type"] = single
                    raw = None
                if isinstance(context, dict) and "context" not in message:
                    message["context"] = context  # batch-level context applies to each
                    raw = None
                if "writeKey" in message:
                    del message["writeKey"]  # a credential: never stored or served
                    raw = None
                if surrogates:
                    # UTF-8 has no lone surrogates: U+FFFD instead, as Segment stores it.
                    message, changed = fix_surrogates(message)
                    if changed:
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
        """Validate (unless done already) and store one checked request with the
        rejections of its invalid messages, in one transaction. Raises StoreError."""
        validator = self.validator
        problems: list[RejectionRow] = []
        if job.validated or self.discard:
            accepted: list[StoredMessage] = [(m, raw, _NONE) for m, raw in job.messages]
        else:
            accepted = []
            append = accepted.append
            single = job.single
            for index, (message, raw) in enumerate(job.messages):
                reasons = validate_message(message, single)
                if reasons:
                    problems.append((
                        job.received_at, job.path, 200,
                        f"dropped invalid message {index}{_describe(message)}: "
                        f"{'; '.join(reasons)}",
                    ))
                else:
                    append((message, raw, _NONE))
        if validator is not None:
            accepted = [(m, raw, self._violations(m)) for m, raw, _ in accepted]
        with self._counter_lock:
            self._batch_seq += 1
            batch_id = f"{self._batch_prefix}-{self._batch_seq}"
        duplicates = 0
        if accepted:
            _, duplicates = self.store.add_batch(batch_id, job.received_at, accepted, problems)
        elif problems:
            self.store.add_rejections(problems)
        if self.log is not None:
            for _, _, status, reason in problems:
                self._print(f"{job.received_at[11:23]}  {job.path:<12} rejected {status}: "
                            f"{reason}")
            if accepted:
                self._print(_batch_line(job.received_at, job.path, batch_id, accepted,
                                        duplicates))

    def _store_failed(self, job: _Job, exc: StoreError) -> Response:
        """A batch that could not be committed (a locked or full database file): 500,
        so the client retries, and a rejection naming why."""
        reason = f"stored none of {len(job.messages)} message(s): {exc}"
        logger.error("collector: %s", reason)
        self.reject(job.received_at, job.path, 500, reason)
        body = json.dumps({"success": False, "code": "store_failed", "message": reason})
        return Response(500, body.encode())

    def _violations(self, message: dict[str, Any]) -> list[str]:
        if self.validator is None:
            return []
        try:
            return [str(v) for v in self.validator(message)]
        except Exception as exc:  # noqa: BLE001 - a broken plan must not break ingestion
            return [f"validator raised {type(exc).__name__}: {exc}"]


def _check_nesting(refusal: str | None) -> None:
    if refusal is None:
        return
    if refusal.startswith("malformed"):
        raise HttpError(400, refusal, "invalid_json")
    raise HttpError(400, f"a message nests objects and arrays deeper than the limit of "
                    f"{MAX_DEPTH} levels (the message being level 1)", "too_deep")


def _too_many() -> HttpError:
    return HttpError(400, f"Exceed payload limit: the batch holds more than "
                     f"{MAX_BATCH_MESSAGES} messages", "too_large")


def _check_count(count: int) -> None:
    if count > MAX_BATCH_MESSAGES:
        raise _too_many()


def _check_context(context: dict[str, Any]) -> None:
    # The batch-level context becomes each message's: level 2 of the message.
    if depth_exceeds(context, MAX_DEPTH - 1):
        raise HttpError(400, f"the batch context nests objects and arrays deeper than the "
                        f"limit of {MAX_DEPTH} levels (the message being level 1)",
                        "too_deep")


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
