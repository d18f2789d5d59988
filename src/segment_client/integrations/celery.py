"""Celery: one client per worker process, the caller's request context carried to tasks.

```python
from celery import Celery
from segment_client.integrations.celery import SegmentCelery

app = Celery("proj")
segment = SegmentCelery(app, client=lambda: Client("WRITE_KEY"))

@app.task
def send_welcome(user_id):
    segment.client.track(user_id, "Welcome Email Sent")
```

- The client is built on first use in each process and built again in every prefork
  child (`worker_process_init`): no child shares its parent's client.
- When a task is sent while message defaults are set (a web request handled by one of
  the web integrations, or `segment_client.context_defaults(...)`), they travel in the
  task's headers and are in force while the task runs, so the task's messages carry the
  request's ids and context (the task's own arguments still win).
- The client is closed, with a bounded flush, when a pool process or the worker shuts
  down (`worker_process_shutdown`, `worker_shutdown`). A killed process (SIGKILL, a
  hard time limit) cannot flush: that is what `shutdown_timeout` cannot help with.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextvars import Token
from typing import Any

from ._common import LazyClient, check_bool, check_seconds, logger, missing_dependency

try:
    from celery import Celery, signals
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_dependency("celery", "celery", exc) from exc

from segment_client import (
    Client,
    ConfigurationError,
    MessageDefaults,
    context_defaults,
    set_context_defaults,
)

__all__ = ["HEADER", "SegmentCelery"]

#: The task header carrying the caller's message defaults (a JSON string).
HEADER = "segment_client_defaults"


def _current_defaults() -> MessageDefaults | None:
    """The message defaults in force, or None when there are none to carry."""
    # Entering with nothing to add yields what is in force (the public request-context
    # hook); leaving restores it unchanged.
    with context_defaults() as defaults:
        pass
    if defaults.user_id is None and defaults.anonymous_id is None and not defaults.context:
        return None
    return defaults


def _encode(defaults: MessageDefaults) -> str:
    return json.dumps(
        {
            "userId": defaults.user_id,
            "anonymousId": defaults.anonymous_id,
            "context": dict(defaults.context),
        },
        default=str, ensure_ascii=False, separators=(",", ":"),
    )


def _decode(raw: object) -> MessageDefaults | None:
    if not isinstance(raw, str | bytes):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    user_id, anonymous_id, context = data.get("userId"), data.get("anonymousId"), data.get(
        "context"
    )
    return MessageDefaults(
        user_id=user_id if isinstance(user_id, str) else None,
        anonymous_id=anonymous_id if isinstance(anonymous_id, str) else None,
        context=context if isinstance(context, dict) else {},
    )


class SegmentCelery:
    """Connects a client to Celery's signals; `SegmentCelery(app)` or `init_app(app)`.

    Args:
        app: the Celery app (optional: `init_app` later).
        client: a function building the client (called once per process), or None for
            `Client()` from `$SEGMENT_WRITE_KEY` / `$SEGMENT_HOST`.
        propagate: carry the caller's message defaults to tasks in a header.
        shutdown_timeout: seconds the flush at process shutdown may take.
    """

    def __init__(
        self,
        app: Celery | None = None,
        *,
        client: Callable[[], Client] | None = None,
        propagate: bool = True,
        shutdown_timeout: float = 5.0,
    ) -> None:
        if client is not None and (isinstance(client, Client) or not callable(client)):
            raise ConfigurationError(
                "client must be a function returning a Client (each worker process builds "
                f"its own), got {client!r}"
            )
        factory = client

        def build() -> Client:
            built = factory() if factory is not None else Client()
            if not isinstance(built, Client):
                raise ConfigurationError(f"client() must return a Client, got {built!r}")
            return built

        check_bool("propagate", propagate)
        check_seconds("shutdown_timeout", shutdown_timeout)
        self._client = LazyClient(build)
        self.propagate = propagate
        self.shutdown_timeout = shutdown_timeout
        self._tokens: dict[str, Token[MessageDefaults | None]] = {}
        self._tokens_lock = threading.Lock()
        self._connected = False
        if app is not None:
            self.init_app(app)

    @property
    def client(self) -> Client:
        """This process's client, built on first use. Thread-safe."""
        return self._client.get()

    def init_app(self, app: Celery) -> None:
        """Connect the signal handlers (once; Celery's signals are process-wide)."""
        if self._connected:
            return
        self._connected = True
        uid = f"segment_client.{id(self)}"
        signals.worker_process_init.connect(self._on_process_init, weak=False, dispatch_uid=uid)
        signals.worker_process_shutdown.connect(self._on_shutdown, weak=False, dispatch_uid=uid)
        signals.worker_shutdown.connect(self._on_shutdown, weak=False, dispatch_uid=uid)
        if self.propagate:
            signals.before_task_publish.connect(self._on_publish, weak=False, dispatch_uid=uid)
            signals.task_prerun.connect(self._on_prerun, weak=False, dispatch_uid=uid)
            signals.task_postrun.connect(self._on_postrun, weak=False, dispatch_uid=uid)

    def disconnect(self) -> None:
        """Disconnect the signal handlers (tests, or an app torn down in-process)."""
        uid = f"segment_client.{id(self)}"
        for signal in (
            signals.worker_process_init, signals.worker_process_shutdown,
            signals.worker_shutdown, signals.before_task_publish, signals.task_prerun,
            signals.task_postrun,
        ):
            signal.disconnect(dispatch_uid=uid)
        self._connected = False

    # -- signal handlers: never raise into Celery ---------------------------------------

    def _on_process_init(self, **_: Any) -> None:
        # A fresh prefork child: forget the parent's client; the first use builds ours.
        self._client.reset()

    def _on_shutdown(self, **_: Any) -> None:
        try:
            if not self._client.close(self.shutdown_timeout):
                logger.warning(
                    "not everything was delivered at worker shutdown "
                    "(within %ss)", self.shutdown_timeout
                )
        except Exception:  # noqa: BLE001 - never raise into the host application
            logger.exception("closing the client at worker shutdown failed")

    def _on_publish(self, headers: dict[str, Any] | None = None, **_: Any) -> None:
        defaults = _current_defaults()
        if defaults is None or headers is None:
            return
        try:
            headers[HEADER] = _encode(defaults)
        except Exception:  # noqa: BLE001 - never raise into the host application
            logger.exception("could not attach the request context to a task")

    def _on_prerun(self, task_id: str | None = None, task: Any = None, **_: Any) -> None:
        try:
            request = getattr(task, "request", None)
            raw = getattr(request, HEADER, None)
            if raw is None:
                raw = (getattr(request, "headers", None) or {}).get(HEADER)
            defaults = _decode(raw)
            if defaults is None or task_id is None:
                return
            token = set_context_defaults(
                user_id=defaults.user_id,
                anonymous_id=defaults.anonymous_id,
                context=defaults.context,
            )
            with self._tokens_lock:
                self._tokens[task_id] = token
        except Exception:  # noqa: BLE001 - never raise into the host application
            logger.exception("could not restore a task's request context")

    def _on_postrun(self, task_id: str | None = None, **_: Any) -> None:
        with self._tokens_lock:
            token = self._tokens.pop(task_id or "", None)
        if token is None:
            return
        try:
            token.var.reset(token)
        except ValueError:
            logger.debug("task context ended in another context")
