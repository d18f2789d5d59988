"""Ingest: decode, check and store what clients send to `/v1/batch` and the single routes.

Each ingest request is checked (size, encoding, nesting, JSON, write key, message count
and size, strict validity), then validated message by message and stored, with the
rejections it causes, in one transaction; the answer (200) is sent only once that is
committed (group commit in the store shares one transaction among the requests that
arrive together). Faults from the `FaultPlan` are applied here.

Decoding (limits, compression, nesting, JSON, lone surrogates, a `writeKey` in a message)
is `_decode.py`'s.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from ._decode import (
    INGEST_PATHS,
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MAX_REQUEST_BYTES,
    decode,
)
from ._faults import Fault, FaultPlan
from ._http import Headers, HttpError, Request, Response
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

# The violations of a message without any (shared, never modified).
_NONE: list[str] = []
_SUCCESS = json.dumps({"success": True}).encode()


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

    def handler(self, kind: str | None = None) -> Callable[[Request], Response]:
        """A route handler ingesting like `/v1/batch` (`kind=None`) or like the
        single-message route of `kind` ("track", ...), for another path: a feature
        module adds, say, analytics.js's short paths with
        `routes.add("POST", "/v1/t", ingest.handler("track"), access="ingest")`."""
        if kind is not None and kind not in MESSAGE_TYPES:
            raise ValueError(f"kind is one of {', '.join(MESSAGE_TYPES)} or None, got {kind!r}")
        return lambda request: self.handle(request, kind or "")

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

    def handle(self, request: Request, kind: str | None = None) -> Response:
        """One ingest request: faults, body, checks, then store; 200 once committed.

        `kind`: see `handler` ("" for a batch whatever the path; None: from the path).
        """
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
            job = self.check(path, request.headers, body, received_at, kind)
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

    def check(self, path: str, headers: Headers, body: bytes, received_at: str,
              kind: str | None = None) -> _Job:
        """Everything that decides the answer: size, encoding, nesting, JSON, key, count,
        strict validity. Returns the messages to store, or raises HttpError."""
        if kind == "":
            single, checked = decode("/v1/batch", headers, body, self._check_key)
        else:
            single, checked = decode(path, headers, body, self._check_key, kind)
        problems: list[str] | None = None
        if self.strict:
            problems = _problems(checked, single)
            if problems:
                raise HttpError(
                    400, "invalid message(s): " + " | ".join(problems), "invalid_message"
                )
        return _Job(received_at, path, single, checked, problems is not None)

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


def _problems(checked: list[tuple[Any, str]], single: str | None) -> list[str]:
    problems = []
    for index, (message, _) in enumerate(checked):
        reasons = validate_message(message, single)
        if reasons:
            problems.append(f"message {index}{_describe(message)}: {'; '.join(reasons)}")
    return problems


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
