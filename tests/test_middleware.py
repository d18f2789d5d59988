"""Middleware: order, drop, change, raising; consumer side; ready-made ones; integrations."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from segment_client import Client, ConfigurationError, DeliveryError
from segment_client._middleware import hash_value, redact_pii, sample, static_context
from segment_client.testing import RecordingTransport

Errors = list[tuple[DeliveryError, list[dict[str, Any]]]]


def _recorder() -> tuple[Errors, Callable[[DeliveryError, list[dict[str, Any]]], None]]:
    errors: Errors = []

    def on_error(error: DeliveryError, messages: list[dict[str, Any]]) -> None:
        errors.append((error, messages))

    return errors, on_error


# -- caller side -------------------------------------------------------------------------


def test_middlewares_run_in_order_and_can_change_the_message(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    client = make_client()

    def first(message: dict[str, Any]) -> dict[str, Any]:
        message["properties"]["seen"] = ["first"]
        return message

    def second(message: dict[str, Any]) -> dict[str, Any]:
        message["properties"]["seen"] = [*message["properties"]["seen"], "second"]
        return {**message, "event": message["event"].upper()}

    client.add_middleware(first)
    client.add_middleware(second)
    props = {"a": 1}
    context = {"ip": "1.2.3.4"}
    client.track("u1", "Clicked", props, context=context)
    assert client.flush(5)
    [message] = transport.messages
    assert message["event"] == "CLICKED"
    assert message["properties"] == {"a": 1, "seen": ["first", "second"]}
    # The caller's dicts are untouched.
    assert props == {"a": 1}
    assert context == {"ip": "1.2.3.4"}


def test_a_middleware_returning_none_drops_quietly(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    errors, on_error = _recorder()
    client = make_client(on_error=on_error)
    client.add_middleware(lambda m: None if m.get("event") == "Noise" else m)
    for event in ("Noise", "Signal", "Noise"):
        client.track("u1", event)
    assert client.flush(5)
    assert [m["event"] for m in transport.messages] == ["Signal"]
    stats = client.stats()
    assert stats.dropped == {"middleware": 2}
    assert stats.queued == stats.delivered == 1
    assert errors == []  # an intentional drop is counted, not reported as an error


def test_a_raising_middleware_drops_only_that_message_and_reports_it(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    errors, on_error = _recorder()
    client = make_client(on_error=on_error)

    def fragile(message: dict[str, Any]) -> dict[str, Any]:
        if message["properties"].get("bad"):
            raise KeyError("boom")
        return message

    client.add_middleware(fragile)
    ids = [client.track("u1", "E", {"bad": bad}) for bad in (False, True, False)]
    assert client.flush(5)
    assert [m["messageId"] for m in transport.messages] == [ids[0], ids[2]]
    assert client.stats().dropped == {"middleware_error": 1}
    [(error, messages)] = errors
    assert "fragile" in str(error) and "KeyError" in str(error)
    assert isinstance(error.__cause__, KeyError)
    assert [m["messageId"] for m in messages] == [ids[1]]


def test_a_middleware_returning_a_non_dict_is_reported(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    errors, on_error = _recorder()
    client = make_client(on_error=on_error)
    client.add_middleware(lambda m: "nope")  # type: ignore[arg-type, return-value]
    client.track("u1", "E")
    assert client.flush(5)
    assert transport.messages == []
    assert client.stats().dropped == {"middleware_error": 1}
    assert "returned str" in str(errors[0][0])


def test_remove_middleware(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    client = make_client()

    def drop_all(message: dict[str, Any]) -> None:
        return None

    client.add_middleware(drop_all)
    client.track("u1", "A")
    client.remove_middleware(drop_all)
    client.track("u1", "B")
    assert client.flush(5)
    assert [m["event"] for m in transport.messages] == ["B"]
    with pytest.raises(ValueError, match="drop_all"):
        client.remove_middleware(drop_all)
    with pytest.raises(ConfigurationError):
        client.add_middleware("not callable")  # type: ignore[arg-type]


def test_deep_copy_protects_nested_values(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    client = make_client()

    def mutate_nested(message: dict[str, Any]) -> dict[str, Any]:
        message["properties"]["items"][0]["price"] = 0
        return message

    client.add_middleware(mutate_nested, deep_copy=True)
    props = {"items": [{"price": 10}]}
    client.track("u1", "E", props)
    assert client.flush(5)
    assert transport.messages[0]["properties"]["items"] == [{"price": 0}]
    assert props == {"items": [{"price": 10}]}


# -- consumer side -----------------------------------------------------------------------


def test_consumer_side_middleware_runs_on_the_consumer_thread(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    threads: list[str] = []
    client = make_client(flush_at=10)

    def stamp(message: dict[str, Any]) -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        message["properties"]["stamped"] = True
        return message

    client.add_middleware(stamp, consumer_side=True)
    props: dict[str, Any] = {}
    client.track("u1", "E", props)
    client.track("u1", "F")
    assert threads == []  # nothing ran in the calls
    assert client.flush(5)
    assert threads == ["segment_client.consumer"] * 2
    assert [m["properties"] for m in transport.messages] == [{"stamped": True}] * 2
    assert props == {}


def test_consumer_side_drops_and_errors_are_counted_exactly(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    errors, on_error = _recorder()
    client = make_client(on_error=on_error, flush_at=10)

    def judge(message: dict[str, Any]) -> dict[str, Any] | None:
        verdict = message["properties"]["verdict"]
        if verdict == "drop":
            return None
        if verdict == "raise":
            raise RuntimeError("consumer boom")
        return message

    client.add_middleware(judge, consumer_side=True)
    for verdict in ("keep", "drop", "raise", "keep", "drop"):
        client.track("u1", "E", {"verdict": verdict})
    assert client.flush(5)
    assert [m["properties"]["verdict"] for m in transport.messages] == ["keep", "keep"]
    stats = client.stats()
    assert stats.dropped == {"middleware": 2, "middleware_error": 1}
    assert stats.delivered == 2 and stats.failed == 0
    assert stats.queued == stats.delivered + stats.failed + stats.queue_depth + stats.in_flight
    assert len(errors) == 1 and "consumer boom" in str(errors[0][0])
    assert errors[0][1][0]["properties"] == {"verdict": "raise"}


def test_consumer_side_failure_reports_only_what_was_sent() -> None:
    errors, on_error = _recorder()
    transport = RecordingTransport(fail_always=401)  # 400 would bisect the batch
    client = Client("k", transport=transport, on_error=on_error, flush_at=10, max_retries=0)
    try:
        client.add_middleware(
            lambda m: None if m["event"] == "Skip" else m, consumer_side=True
        )
        for event in ("A", "Skip", "B"):
            client.track("u1", event)
        assert not client.flush(5)
        stats = client.stats()
        assert stats.failed == 2 and stats.delivered == 0
        assert stats.dropped == {"middleware": 1}
        assert transport.attempts == [(2, 0)]
        assert [m["event"] for m in errors[0][1]] == ["A", "B"]
    finally:
        client.close_and_flush(5)


def test_consumer_side_middleware_does_not_keep_the_client_alive() -> None:
    transport = RecordingTransport()
    client = Client("k", transport=transport)
    client.add_middleware(lambda m: m, consumer_side=True)
    client.track("u1", "A")
    assert client.flush(5)
    thread = client._consumer.thread
    ref = weakref.ref(client)
    del client
    gc.collect()
    assert ref() is None
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive()


def test_consumer_side_in_sync_mode_and_removal(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    client = make_client(sync_mode=True)

    def tag(message: dict[str, Any]) -> dict[str, Any]:
        message["properties"]["tag"] = 1
        return message

    client.add_middleware(tag, consumer_side=True)
    client.track("u1", "A")
    client.remove_middleware(tag)
    client.track("u1", "B")
    assert [m["properties"] for m in transport.messages] == [{"tag": 1}, {}]


# -- default integrations ----------------------------------------------------------------


def test_default_integrations_merge_under_the_calls_own(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    defaults = {"All": True, "Salesforce": False}
    client = make_client(integrations=defaults)
    own = {"Salesforce": True, "Mixpanel": False}
    client.track("u1", "A", integrations=own)
    client.identify("u1", {"x": 1})
    client.alias("old", "u1")
    assert client.flush(5)
    first, second, third = transport.messages
    assert first["integrations"] == {"All": True, "Salesforce": True, "Mixpanel": False}
    assert second["integrations"] == third["integrations"] == defaults
    assert own == {"Salesforce": True, "Mixpanel": False}
    defaults["All"] = False  # the client kept its own copy
    client.track("u1", "B")
    assert client.flush(5)
    assert transport.messages[-1]["integrations"]["All"] is True


def test_default_integrations_are_seen_by_middleware(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    seen: list[dict[str, Any]] = []
    client = make_client(integrations={"All": False})

    def look(message: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(message["integrations"]))
        return message

    client.add_middleware(look)
    client.track("u1", "A")
    assert seen == [{"All": False}]


def test_bad_default_integrations_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="integrations"):
        Client("k", transport=RecordingTransport(), integrations=["All"])  # type: ignore[arg-type]


# -- ready-made middlewares --------------------------------------------------------------


def test_static_context_fills_under_the_messages_own(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    client = make_client()
    client.add_middleware(static_context(
        {"app": {"name": "shop"}}, app_version="1.4.2", environment="production"
    ))
    client.track("u1", "A")
    client.track("u1", "B", context={"app": {"version": "9"}, "environment": "test"})
    assert client.flush(5)
    first, second = (m["context"] for m in transport.messages)
    assert first["app"] == {"name": "shop", "version": "1.4.2"}
    assert first["environment"] == "production"
    assert first["library"]["name"] == "segment-client-python"
    assert second["app"] == {"name": "shop", "version": "9"}
    assert second["environment"] == "test"


def test_redact_pii_drops_hashes_and_keeps_email_domains(
    make_client: Callable[..., Client], transport: RecordingTransport
) -> None:
    client = make_client()
    client.add_middleware(redact_pii(
        drop=["password"], hash=["phone"], email_domain=["email", "work_email"], salt="s"
    ))
    traits = {"Email": "Ann@Example.COM", "phone": "+1 555", "password": "x", "plan": "pro"}
    props = {"buyer": {"work_email": "b@corp.io", "password": "y"}, "items": [{"email": "c@d.e"}]}
    client.identify("u1", traits)
    client.track("u1", "Bought", props)
    assert client.flush(5)
    identify, track = transport.messages
    assert identify["traits"] == {
        "EmailDomain": "example.com", "phone": hash_value("+1 555", "s"), "plan": "pro",
    }
    assert track["properties"] == {
        "buyer": {"work_email_domain": "corp.io"}, "items": [{"emailDomain": "d.e"}],
    }
    # Nested caller objects were copied, not mutated.
    assert props == {
        "buyer": {"work_email": "b@corp.io", "password": "y"}, "items": [{"email": "c@d.e"}],
    }
    assert traits["Email"] == "Ann@Example.COM"


def test_redact_pii_leaves_clean_messages_alone() -> None:
    redact = redact_pii(drop=["ssn"])
    props = {"a": {"b": [1, 2]}}
    result = redact({"type": "track", "properties": props})
    assert result is not None and result["properties"] is props


def test_sampling_is_deterministic_by_user() -> None:
    keep_half = sample(0.5, seed="x")

    def kept() -> set[str]:
        out = set()
        for n in range(400):
            msg = {"type": "track", "event": "E", "userId": f"user-{n}", "context": {}}
            if keep_half(msg) is not None:
                out.add(f"user-{n}")
        return out

    first = kept()
    assert first == kept()
    assert 140 < len(first) < 260
    result = keep_half({"type": "track", "event": "E", "userId": next(iter(first))})
    assert result is not None and result["context"]["sampleRate"] == 0.5


def test_sampling_scope(make_client: Callable[..., Client], transport: RecordingTransport) -> None:
    client = make_client()
    client.add_middleware(sample(0.0, events=["Noisy"]))
    client.track("u1", "Noisy")
    client.track("u1", "Important")
    client.identify("u1", {})
    assert client.flush(5)
    assert [m.get("event", m["type"]) for m in transport.messages] == ["Important", "identify"]
    assert client.stats().dropped == {"middleware": 1}
    with pytest.raises(ValueError, match="rate"):
        sample(1.5)
