"""Per-request message defaults carried in a ContextVar.

Web integrations set them for the duration of a request (context: ip, userAgent, page...;
ids from analytics.js cookies); every message built in that thread or task picks them up,
with the caller's own arguments winning. A ContextVar follows asyncio tasks and
`contextvars.copy_context()`, and is empty in a thread that did not set it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MessageDefaults",
    "context_defaults",
    "current_defaults",
    "reset_context_defaults",
    "set_context_defaults",
]


@dataclass(frozen=True)
class MessageDefaults:
    """Defaults applied to messages built while they are set. Immutable."""

    user_id: str | None = None
    anonymous_id: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)

    def apply(
        self, user_id: Any, anonymous_id: Any, context: Any
    ) -> tuple[Any, Any, Any]:
        """Fill each missing id and merge the context under the caller's top-level keys."""
        if user_id is None and self.user_id is not None:
            user_id = self.user_id
        if anonymous_id is None and self.anonymous_id is not None:
            anonymous_id = self.anonymous_id
        if self.context:
            if context is None:
                context = dict(self.context)
            elif isinstance(context, Mapping):
                context = {**self.context, **context}
            # Anything else is left for the builder to reject with a clear MessageError.
        return user_id, anonymous_id, context


_current: ContextVar[MessageDefaults | None] = ContextVar(
    "segment_client_defaults", default=None
)

current_defaults = _current.get


def set_context_defaults(
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> Token[MessageDefaults | None]:
    """Set the defaults for the current context; pass the token to `reset_context_defaults`.

    Nested calls layer: ids given here replace outer ones, context keys merge over them.
    """
    outer = _current.get()
    if outer is not None:
        user_id = user_id if user_id is not None else outer.user_id
        anonymous_id = anonymous_id if anonymous_id is not None else outer.anonymous_id
        context = {**outer.context, **(context or {})}
    return _current.set(MessageDefaults(user_id, anonymous_id, dict(context or {})))


def reset_context_defaults(token: Token[MessageDefaults | None]) -> None:
    """Restore the defaults that were in force before `set_context_defaults`."""
    _current.reset(token)


@contextmanager
def context_defaults(
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> Iterator[MessageDefaults]:
    """`with context_defaults(anonymous_id=..., context={...}):` scopes message defaults."""
    token = set_context_defaults(user_id=user_id, anonymous_id=anonymous_id, context=context)
    try:
        current = _current.get()
        assert current is not None
        yield current
    finally:
        _current.reset(token)
