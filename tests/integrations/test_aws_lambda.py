"""The Lambda decorator and context manager: flush before return, bounded, never raising."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from segment_client import Client, ConfigurationError
from segment_client.integrations.aws_lambda import (
    DEFAULT_TIMEOUT,
    flush_after,
    flushing,
)
from segment_client.testing import RecordingTransport


class FakeContext:
    """The two attributes of a Lambda context the code may read."""

    aws_request_id = "req-lambda-1"

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class SpyClient:
    """Stands in for a client: records flush timeouts, optionally raises."""

    def __init__(self, error: Exception | None = None) -> None:
        self.timeouts: list[float | None] = []
        self.error = error

    def flush(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        if self.error:
            raise self.error
        return True


def test_example_handler_delivers_before_returning() -> None:
    from lambda_handler import build_handler

    transport = RecordingTransport()
    # flush_interval far away: only the decorator's flush can deliver in time.
    client = Client("k", transport=transport, flush_interval=3600)
    try:
        handler = build_handler(client)
        result = handler({"userId": "u-1", "orderId": "o-1", "revenue": 5}, FakeContext(3000))
        assert result == {"statusCode": 200}
        (message,) = transport.messages  # already delivered: no flush by the test
        assert message["properties"] == {"orderId": "o-1", "revenue": 5}
        assert message["context"]["requestId"] == "req-lambda-1"
    finally:
        client.close_and_flush(5)


def test_flush_is_bounded_by_remaining_time_minus_margin() -> None:
    spy = SpyClient()

    @flush_after(lambda: spy, safety_margin=0.5)  # type: ignore[arg-type,return-value]
    def handler(event: Any, context: Any) -> str:
        return "done"

    assert handler({}, FakeContext(2000)) == "done"
    assert handler({}, FakeContext(300)) == "done"  # less than the margin: no waiting
    assert spy.timeouts == [1.5, 0.0]


def test_any_signature_and_explicit_cap() -> None:
    spy = SpyClient()

    @flush_after(lambda: spy, timeout=1.0)  # type: ignore[arg-type,return-value]
    def handler(*args: Any, **kwargs: Any) -> int:
        return len(args) + len(kwargs)

    assert handler(context=FakeContext(60_000)) == 1
    assert handler("a", "b", FakeContext(800), extra=1) == 4
    assert handler() == 0  # no context: the cap (or DEFAULT_TIMEOUT without one)
    assert spy.timeouts == pytest.approx([1.0, 0.3, 1.0])


def test_no_context_uses_the_default_timeout() -> None:
    spy = SpyClient()
    with flushing(lambda: spy):  # type: ignore[arg-type,return-value]
        pass
    assert spy.timeouts == [DEFAULT_TIMEOUT]


def test_flush_errors_never_reach_the_handler(caplog: pytest.LogCaptureFixture) -> None:
    spy = SpyClient(error=RuntimeError("network on fire"))

    @flush_after(lambda: spy)  # type: ignore[arg-type,return-value]
    def handler(event: Any, context: Any) -> str:
        return "ok"

    assert handler({}, FakeContext(5000)) == "ok"
    assert "flush before the handler returned failed" in caplog.text


def test_handler_exceptions_pass_through_after_the_flush() -> None:
    spy = SpyClient()

    @flush_after(lambda: spy)  # type: ignore[arg-type,return-value]
    def handler(event: Any, context: Any) -> None:
        raise KeyError("bad event")

    with pytest.raises(KeyError, match="bad event"):
        handler({}, FakeContext(5000))
    assert spy.timeouts == [4.5]


def test_async_handler() -> None:
    spy = SpyClient()

    @flush_after(lambda: spy)  # type: ignore[arg-type,return-value]
    async def handler(event: Any, context: Any) -> str:
        await asyncio.sleep(0)
        return "async ok"

    assert asyncio.run(handler({}, FakeContext(1500))) == "async ok"
    assert spy.timeouts == [1.0]


def test_unfinished_flush_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    transport = RecordingTransport(fail_always=503)
    client = Client("k", transport=transport, max_retries=1000, retry_base_delay=60)
    try:

        @flush_after(client)
        def handler(event: Any, context: Any) -> str:
            client.track("u-1", "Tried")
            return "ok"

        assert handler({}, FakeContext(600)) == "ok"  # 0.1 s of flushing at most
        assert "did not deliver everything" in caplog.text
        assert client.stats().queue_depth + client.stats().in_flight == 1
    finally:
        client.close_and_flush(0)


def test_bad_arguments_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="client"):
        flush_after("not a client")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="safety_margin"):
        flush_after(lambda: Client("k"), safety_margin=-1)  # type: ignore[arg-type,return-value]
