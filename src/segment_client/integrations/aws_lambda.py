"""AWS Lambda (and other freeze-between-invocations platforms): flush before returning.

Lambda freezes the process as soon as the handler returns, so the background thread
cannot send what the invocation queued. Wrap the handler:

```python
from segment_client import Client
from segment_client.integrations.aws_lambda import flush_after

client = Client()   # module level: reused across warm invocations

@flush_after(client)
def handler(event, context):
    client.track("user-1", "Order Completed")
    return {"statusCode": 200}
```

or scope a block with `with flushing(client, context): ...`. The flush is bounded by the
invocation's remaining time (`context.get_remaining_time_in_millis()`) minus a safety
margin, so it cannot turn into a Lambda timeout, and it never raises into the handler:
an unfinished flush is logged (the messages stay queued for the next invocation of this
warm process). Works with any handler signature, sync or async; no AWS dependency.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from segment_client import Client, ConfigurationError

from ._common import logger

__all__ = ["DEFAULT_TIMEOUT", "SAFETY_MARGIN", "flush_after", "flush_now", "flushing"]

#: Seconds kept back from the invocation's remaining time for the handler's return.
SAFETY_MARGIN = 0.5
#: The flush bound when no Lambda context is found.
DEFAULT_TIMEOUT = 2.0

F = TypeVar("F", bound=Callable[..., Any])
ClientSource = Client | Callable[[], Client]


def _check_source(client: object) -> None:
    if not isinstance(client, Client) and not callable(client):
        raise ConfigurationError(
            f"client must be a Client or a function returning one, got {client!r}"
        )


def _check_context(context: object, helper: str) -> None:
    # flush_now(client, 2) reads like a timeout; it would be taken as the context.
    if isinstance(context, int | float | str):
        raise ConfigurationError(
            f"{helper}(client, {context!r}): the second argument is the Lambda context; "
            f"pass a bound as timeout={context!r}"
        )


def _find_context(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The Lambda context among a handler's arguments: any object with the method."""
    for value in (kwargs.get("context"), *args, *kwargs.values()):
        if callable(getattr(value, "get_remaining_time_in_millis", None)):
            return value
    return None


def _timeout(context: Any, safety_margin: float, timeout: float | None) -> float:
    remaining: float | None = None
    if context is not None:
        try:
            millis = context.get_remaining_time_in_millis()
            if isinstance(millis, int | float) and not isinstance(millis, bool):
                remaining = max(0.0, millis / 1000.0 - safety_margin)
        except Exception:  # noqa: BLE001 - never raise into the host application
            logger.warning("context.get_remaining_time_in_millis() failed")
    if remaining is None:
        return DEFAULT_TIMEOUT if timeout is None else timeout
    return remaining if timeout is None else min(remaining, timeout)


def flush_now(
    client: ClientSource,
    context: Any = None,
    *,
    safety_margin: float = SAFETY_MARGIN,
    timeout: float | None = None,
) -> bool:
    """Flush `client` within the invocation's remaining time minus `safety_margin`.

    Blocks up to that long (or `timeout` when smaller; `DEFAULT_TIMEOUT` with no context).
    Returns True when everything queued was delivered. Never raises on delivery; a
    number given as the context (`flush_now(client, 2)`) is a `ConfigurationError`.
    """
    _check_context(context, "flush_now")
    try:
        resolved = client if isinstance(client, Client) else client()
        bound = _timeout(context, safety_margin, timeout)
        delivered = resolved.flush(bound)
    except Exception:  # noqa: BLE001 - never raise into the host application
        logger.exception("flush before the handler returned failed")
        return False
    if not delivered:
        logger.warning(
            "flush before the handler returned did not deliver everything "
            "within %.3fs; stats: %s",
            bound,
            resolved.stats(),
        )
    return delivered


@contextmanager
def flushing(
    client: ClientSource,
    context: Any = None,
    *,
    safety_margin: float = SAFETY_MARGIN,
    timeout: float | None = None,
) -> Iterator[None]:
    """`with flushing(client, context):` flushes on the way out, even on an exception."""
    _check_source(client)
    _check_context(context, "flushing")
    try:
        yield
    finally:
        flush_now(client, context, safety_margin=safety_margin, timeout=timeout)


def flush_after(
    client: ClientSource,
    *,
    safety_margin: float = SAFETY_MARGIN,
    timeout: float | None = None,
) -> Callable[[F], F]:
    """Decorate a handler (any signature, sync or async) to flush before it returns.

    The Lambda context is found among the handler's arguments (the `context` keyword,
    or any argument with `get_remaining_time_in_millis`). The handler's result and
    exceptions pass through unchanged.
    """
    _check_source(client)
    if isinstance(safety_margin, bool) or not isinstance(safety_margin, int | float) or (
        safety_margin < 0
    ):
        raise ConfigurationError(f"safety_margin must be seconds >= 0, got {safety_margin!r}")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
    ):
        raise ConfigurationError(f"timeout must be None or seconds >= 0, got {timeout!r}")

    def decorate(handler: F) -> F:
        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await handler(*args, **kwargs)
                finally:
                    # Blocking is fine here: the invocation has nothing else to run.
                    flush_now(
                        client,
                        _find_context(args, kwargs),
                        safety_margin=safety_margin,
                        timeout=timeout,
                    )

            return cast(F, async_wrapper)

        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            finally:
                flush_now(
                    client,
                    _find_context(args, kwargs),
                    safety_margin=safety_margin,
                    timeout=timeout,
                )

        return cast(F, wrapper)

    return decorate
