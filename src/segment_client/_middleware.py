"""Middleware: functions that see, change or drop each message before it is sent.

Caller-side middleware (the default) runs on the calling thread, before the message is
encoded and queued. Consumer-side middleware runs on the consumer thread just before a
batch is sent: the call itself then pays nothing for it, and the consumer decodes,
changes and re-encodes only when such middleware exists.

A middleware gets a message it may change and returns it, another dict, or None to
drop it. One that raises (or returns something else) drops only that message; the drop
is counted, logged and passed to `on_error`, and the call never sees the exception.

Copy cost: the caller-side chain gets a copy of the message's top level and of its
`context`, `properties`, `traits` and `integrations` dicts, so setting or deleting keys
there never touches the caller's objects. Values nested deeper are shared with the
caller: replace them instead of mutating them in place (the ready-made middlewares do),
or add the middleware with `deep_copy=True`.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._batch import MAX_MESSAGE_BYTES
from ._exceptions import DeliveryError
from ._json import dumps, loads

__all__ = [
    "Middleware",
    "MiddlewareChains",
    "hash_value",
    "redact_pii",
    "run_chain",
    "sample",
    "static_context",
]

logger = logging.getLogger("segment_client")

Message = dict[str, Any]
#: A middleware gets a message it may change and returns it, a new one, or None (drop).
Middleware = Callable[[Message], "Message | None"]
#: (reason, error, messages): error None is an intentional drop (counted, not reported).
DropReporter = Callable[[str, "DeliveryError | None", list[dict[str, Any]]], None]

# The dicts a middleware is expected to change; copied one level deep.
_PAYLOAD_KEYS = ("context", "properties", "traits", "integrations")


def _copy_message(message: Message) -> Message:
    out = dict(message)
    for key in _PAYLOAD_KEYS:
        value = out.get(key)
        if isinstance(value, dict):
            out[key] = dict(value)
    return out


def _name(middleware: Middleware) -> str:
    return getattr(middleware, "__qualname__", None) or repr(middleware)


def run_chain(
    chain: tuple[Middleware, ...], message: Message, *, deep_copy: bool = False,
    copy_message: bool = True,
) -> tuple[Message | None, DeliveryError | None]:
    """Run `chain` in order on a copy of `message` (see the module docstring).

    Returns (message, None), (None, None) when a middleware dropped it, or
    (None, error) when one raised or returned something other than a dict or None.
    """
    current: Message = message
    if copy_message:
        current = copy.deepcopy(message) if deep_copy else _copy_message(message)
    for middleware in chain:
        try:
            result: object = middleware(current)
        except Exception as exc:
            error = DeliveryError(
                f"middleware {_name(middleware)} raised {type(exc).__name__}: {exc}"
            )
            error.__cause__ = exc
            logger.debug("middleware raised", exc_info=exc)
            return None, error
        if result is None:
            return None, None
        if not isinstance(result, dict):
            return None, DeliveryError(
                f"middleware {_name(middleware)} returned {type(result).__name__}; "
                "expected the message (a dict) or None"
            )
        current = result
    return current, None


class MiddlewareChains:
    """The caller-side and consumer-side chains of one client.

    Thread-safe: add/remove replace immutable tuples under a lock, so a call in flight
    keeps the chain it started with.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.caller: tuple[Middleware, ...] = ()
        self.consumer: tuple[Middleware, ...] = ()
        self.deep_copy = False
        self._deep: set[int] = set()

    def add(self, middleware: Middleware, *, consumer_side: bool, deep_copy: bool) -> None:
        with self._lock:
            if consumer_side:
                self.consumer = (*self.consumer, middleware)
            else:
                self.caller = (*self.caller, middleware)
                if deep_copy:
                    self._deep.add(id(middleware))
                self.deep_copy = any(id(m) in self._deep for m in self.caller)

    def remove(self, middleware: Middleware) -> None:
        with self._lock:
            for side in ("caller", "consumer"):
                chain = list(getattr(self, side))
                if middleware in chain:
                    chain.remove(middleware)
                    setattr(self, side, tuple(chain))
                    break
            else:
                raise ValueError(f"middleware {_name(middleware)} was not added")
            self.deep_copy = any(id(m) in self._deep for m in self.caller)

    def run_caller(self, message: Message, drop: DropReporter) -> Message | None:
        """Run the caller-side chain; None when the message was dropped (and reported)."""
        result, error = run_chain(self.caller, message, deep_copy=self.deep_copy)
        return _settle(result, error, message, drop)

    def prepare_batch(self, batch: list[bytes], drop: DropReporter) -> list[bytes | None]:
        """Consumer side: each message through the consumer-side chain, re-encoded.

        Returns a list aligned with `batch`; None marks a message the chain dropped
        (already counted and reported). Runs on the consumer thread.
        """
        chain = self.consumer
        if not chain:
            return list(batch)
        out: list[bytes | None] = []
        for data in batch:
            try:
                message = loads(data)
            except ValueError:
                out.append(data)  # not ours to judge: send it as it was queued
                continue
            result, error = run_chain(chain, message, copy_message=False)
            if _settle(result, error, message, drop) is None:
                out.append(None)
                continue
            encoded = dumps(result)
            if len(encoded) > MAX_MESSAGE_BYTES:
                drop(
                    "middleware_error",
                    DeliveryError(
                        f"consumer-side middleware grew a message to {len(encoded)} bytes, "
                        f"over the {MAX_MESSAGE_BYTES} byte limit"
                    ),
                    [message],
                )
                out.append(None)
                continue
            out.append(encoded)
        return out


def _settle(
    result: Message | None, error: DeliveryError | None, original: Message,
    drop: DropReporter,
) -> Message | None:
    if result is not None:
        return result
    if error is None:
        drop("middleware", None, [original])
    else:
        drop("middleware_error", error, [original])
    return None


# -- ready-made middlewares -------------------------------------------------------------


def static_context(
    values: Mapping[str, Any] | None = None,
    *,
    app_name: str | None = None,
    app_version: str | None = None,
    app_build: str | None = None,
    environment: str | None = None,
) -> Middleware:
    """Add fixed `context` fields (e.g. app version, environment) to every message.

    The message's own context wins: top-level keys it already has are kept, and a dict
    value such as `app` is merged one level under the message's own `app`.
    `environment` is stored as `context.environment` (not a Segment-spec field; it
    reaches warehouses as a column).
    """
    fixed: dict[str, Any] = {k: copy.deepcopy(v) for k, v in (values or {}).items()}
    app = {
        k: v for k, v in (("name", app_name), ("version", app_version), ("build", app_build))
        if v is not None
    }
    if app:
        fixed["app"] = {**fixed.get("app", {}), **app}
    if environment is not None:
        fixed["environment"] = environment

    def add_static_context(message: Message) -> Message:
        context = message.get("context")
        if not isinstance(context, dict):
            context = {}
        merged = dict(fixed)
        for key, value in context.items():
            base = merged.get(key)
            if isinstance(base, dict) and isinstance(value, dict):
                merged[key] = {**base, **value}
            else:
                merged[key] = value
        message["context"] = merged
        return message

    return add_static_context


def hash_value(value: Any, salt: str = "") -> str:
    """SHA-256 hex of `salt + str(value)` (lower-cased and stripped for strings)."""
    text = value.strip().lower() if isinstance(value, str) else str(value)
    return hashlib.sha256((salt + text).encode("utf-8")).hexdigest()


def _domain_key(key: str) -> str:
    return f"{key}_domain" if "_" in key else f"{key}Domain"


def redact_pii(
    *,
    drop: Iterable[str] = (),
    hash: Iterable[str] = (),
    email_domain: Iterable[str] = ("email",),
    salt: str = "",
    fields: Iterable[str] = ("properties", "traits", "context"),
) -> Middleware:
    """Remove or hash personal fields by name, at any depth of the given payload fields.

    - `drop`: keys removed entirely (e.g. `password`, `ssn`).
    - `hash`: values replaced by `hash_value(value, salt)` (SHA-256 hex).
    - `email_domain`: an email key becomes its domain only: `email` -> `emailDomain`
      (`work_email` -> `work_email_domain`); the address itself is removed.

    Names match case-insensitively. Changed dicts and lists are copied, never mutated,
    so the caller's nested objects stay untouched.
    """
    dropped = frozenset(k.lower() for k in drop)
    hashed = frozenset(k.lower() for k in hash)
    emails = frozenset(k.lower() for k in email_domain)
    targets = tuple(fields)

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            changed = False
            out: dict[str, Any] = {}
            for key, item in value.items():
                lowered = key.lower() if isinstance(key, str) else key
                if lowered in dropped:
                    changed = True
                elif lowered in hashed and item is not None:
                    out[key] = hash_value(item, salt)
                    changed = True
                elif lowered in emails and isinstance(key, str):
                    changed = True
                    if isinstance(item, str) and "@" in item:
                        out[_domain_key(key)] = item.rsplit("@", 1)[1].strip().lower()
                else:
                    new = scrub(item)
                    changed = changed or new is not item
                    out[key] = new
            return out if changed else value
        if isinstance(value, list):
            items = [scrub(item) for item in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                return items
        return value

    def redact(message: Message) -> Message:
        for name in targets:
            value = message.get(name)
            if isinstance(value, dict):
                message[name] = scrub(value)
        return message

    return redact


def sample(
    rate: float,
    *,
    events: Iterable[str] | None = None,
    types: Iterable[str] = ("track", "page", "screen"),
    seed: str = "",
) -> Middleware:
    """Keep about `rate` (0..1) of the messages of `types` (and, if given, `events`).

    Deterministic by user: the choice hashes `userId` (else `anonymousId`) with `seed`,
    so one user's events are all kept or all dropped (funnels stay whole). Messages
    without an id are sampled at random. Other messages always pass; kept sampled ones
    carry `context.sampleRate` so analyses can re-weight.
    """
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise ValueError(f"rate must be a number from 0 to 1, got {rate!r}")
    names = None if events is None else frozenset(events)
    kinds = frozenset(types)
    threshold = int(rate * 2**64)

    def sampled(message: Message) -> Message | None:
        if message.get("type") not in kinds:
            return message
        if names is not None and message.get("event") not in names:
            return message
        who = message.get("userId") or message.get("anonymousId")
        if who is None:
            keep = random.random() < rate
        else:
            digest = hashlib.sha256(f"{seed}:{who}".encode()).digest()
            keep = int.from_bytes(digest[:8], "big") < threshold
        if not keep:
            return None
        context = message.get("context")
        message["context"] = {**(context if isinstance(context, dict) else {}),
                              "sampleRate": rate}
        return message

    return sampled
