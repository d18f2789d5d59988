"""The `segment_recorder` pytest plugin, run in real inner pytest sessions (pytester).

These prove what a user sees: the fixture is there without configuration (entry point),
assertions pass and fail as documented, failure output lists what was recorded, and
attached clients are restored after each test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def test_fixture_is_registered_through_the_entry_point(pytester: pytest.Pytester) -> None:
    """A project with no conftest gets `segment_recorder`; `-p no:` removes it."""
    pytester.makepyfile(
        """
        def test_it(segment_recorder):
            client = segment_recorder.client()
            client.track("user-1", "Signed Up")
            segment_recorder.assert_tracked("Signed Up", user_id="user-1", count=1)
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    disabled = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:segment_client")
    disabled.assert_outcomes(errors=1)
    disabled.stdout.fnmatch_lines(["*fixture 'segment_recorder' not found*"])


def test_failed_assertion_lists_what_was_tracked(pytester: pytest.Pytester) -> None:
    """The failure names the query, the count found, and every recorded message."""
    pytester.makepyfile(
        """
        def test_it(segment_recorder):
            client = segment_recorder.client()
            client.identify("user-1", {"plan": "pro"})
            client.track("user-2", "Order Completed", {"revenue": 10})
            client.track("user-1", "Order Completed", {"revenue": 5})
            segment_recorder.assert_tracked(
                "Order Completed", user_id="user-1", properties_include={"revenue": 10},
            )
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    expected = [
        "AssertionError: expected at least 1 track message with event='Order Completed', "
        "userId='user-1', properties including {'revenue': 10}; found 0.",
        "Recorded 3 message(s):",
        "  1. identify userId='user-1' traits={'plan': 'pro'}",
        "  2. track 'Order Completed' userId='user-2' properties={'revenue': 10}"
        "   <- differs: userId='user-2'",
        "  3. track 'Order Completed' userId='user-1' properties={'revenue': 5}"
        "   <- differs: properties['revenue']=5",
    ]
    lines = [line.removeprefix("E").strip() for line in result.outlines]
    for line in expected:
        assert line.strip() in lines, f"{line!r} not in the output:\n{result.stdout.str()}"


def test_count_mismatch_marks_the_matches(pytester: pytest.Pytester) -> None:
    """count=1 fails on two matching events, and the output marks both as matching."""
    pytester.makepyfile(
        """
        def test_it(segment_recorder):
            client = segment_recorder.client()
            client.track("user-1", "Clicked")
            client.track("user-1", "Clicked")
            segment_recorder.assert_tracked("Clicked", count=1)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*expected exactly 1 track message with event='Clicked'; found 2.",
            "*1. track 'Clicked' userId='user-1' properties={}   <- matches",
            "*2. track 'Clicked' userId='user-1' properties={}   <- matches",
        ]
    )


def test_ini_option_attaches_a_module_level_client(pytester: pytest.Pytester) -> None:
    """`segment_client_attach` records an app's own client in every test using the
    fixture, and gives the client back its transport and `send` flag afterwards."""
    pytester.makepyfile(
        app="""
        from segment_client import Client

        client = Client("app-key", host="http://127.0.0.1:9", send=False)

        def get_client():
            return client

        def checkout(user_id):
            client.track(user_id, "Order Completed", {"revenue": 59.99})
        """
    )
    pytester.makeini(
        """
        [pytest]
        segment_client_attach =
            app:get_client
        """
    )
    # The app's client lives as long as the process, as in a real app; this inner
    # session runs in our process, so it closes the client the way atexit would.
    pytester.makeconftest(
        """
        def pytest_unconfigure():
            import app
            app.client.close_and_flush(5)
        """
    )
    pytester.makepyfile(
        test_app="""
        import app

        def test_checkout(segment_recorder):
            app.checkout("user-1")
            segment_recorder.assert_tracked(
                "Order Completed", user_id="user-1",
                properties_include={"revenue": 59.99}, count=1,
            )

        def test_restored_after_the_test():
            from segment_client import HTTPTransport
            assert isinstance(app.client._consumer.sender.transport, HTTPTransport)
            assert app.client.send is False
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_bad_ini_target_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A malformed `segment_client_attach` line fails with a message naming the option."""
    pytester.makeini(
        """
        [pytest]
        segment_client_attach = not-a-target
        """
    )
    pytester.makepyfile("def test_it(segment_recorder):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*segment_client_attach: expected 'module:attribute'*"])


def test_the_documented_example_project_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/testing/ (shown in docs/testing.md) passes as a project of its own.

    In a subprocess: its app keeps a process-wide client, as real apps do.
    """
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
    source = Path(__file__).parent.parent / "examples" / "testing"
    for path in source.iterdir():
        if path.is_file():
            (pytester.path / path.name).write_text(path.read_text())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


GUARD_CHECK = """
from segment_client import _guard

def refused(url):
    return _guard.refusal(url)
"""


def test_a_request_beyond_this_machine_is_refused_and_fails_the_test(
    pytester: pytest.Pytester,
) -> None:
    """The refusal names the URL, the test, the fixture, the marker and the ini option;
    the test fails even though its own code swallowed the error."""
    pytester.makepyfile(
        GUARD_CHECK
        + """
def test_it():
    text = refused("https://api.segment.io/v1/batch")
    assert text is not None
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*a request was refused:*",
        "*request to https://api.segment.io/v1/batch refused by the segment_client pytest "
        "plugin during "
        "test_a_request_beyond_this_machine_is_refused_and_fails_the_test.py::test_it: "
        "tests must not send to Segment. Record the client with the segment_recorder "
        "fixture (segment_recorder.attach(client), or the segment_client_attach ini "
        "option), or allow the network with @pytest.mark.segment_allow_network or "
        "segment_client_allow_network = true",
    ])


def test_loopback_collectors_are_always_allowed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        GUARD_CHECK
        + """
import pytest

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8787/v1/batch", "http://127.8.9.1/v1/batch",
    "http://localhost:9/v1/batch", "http://[::1]:9/v1/batch",
    "http://app.localhost/v1/batch",
])
def test_loopback(url):
    assert refused(url) is None

@pytest.mark.parametrize("url", [
    "https://events.eu1.segmentapis.com/v1/batch", "http://10.0.0.1/v1/batch",
    "http://[::2]/v1/batch", "http://localhost.example.com/v1/batch",
])
def test_elsewhere(url):
    assert refused(url) is not None
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, failed=4)  # the refusals fail the test they were in


def test_the_marker_and_the_ini_option_allow_the_network(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        GUARD_CHECK
        + """
import pytest

@pytest.mark.segment_allow_network
def test_marked():
    assert refused("https://api.segment.io/v1/batch") is None

def test_unmarked():
    assert refused("https://api.segment.io/v1/batch") is not None
"""
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1, failed=1)
    pytester.makeini("[pytest]\nsegment_client_allow_network = true\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1, failed=1)
    # With the whole session allowed, test_unmarked's assertion itself fails.
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*assert None is not None*"])


def test_clients_created_during_a_test_record_into_the_fixture(
    pytester: pytest.Pytester,
) -> None:
    """A Client made by the code under test (default host) is captured; one given a
    loopback host or its own transport is left alone."""
    pytester.makepyfile(
        """
from segment_client import Client, HTTPTransport
from segment_client.testing import RecordingTransport

def test_it(segment_recorder):
    app = Client("app-key")  # would send to Segment
    local = Client("k", host="http://127.0.0.1:9", send=False)
    own = RecordingTransport()
    custom = Client("k", host="https://api.segment.io", transport=own)
    app.track("user-1", "Order Completed")
    local.track("user-1", "Local")
    custom.track("user-1", "Custom")
    segment_recorder.assert_tracked("Order Completed", user_id="user-1", count=1)
    segment_recorder.assert_not_tracked("Local")
    segment_recorder.assert_not_tracked("Custom")
    custom.flush(5)
    assert [m["event"] for m in own.messages] == ["Custom"]
    for client in (app, local, custom):
        client.close_and_flush(5)
"""
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_client_that_forgot_the_fixture_sends_nothing(pytester: pytest.Pytester) -> None:
    """A real Client with the default host: the request is refused before it is made,
    reported through on_error, and the test fails naming the fixture."""
    pytester.makepyfile(
        """
from segment_client import Client

def test_forgot_the_fixture():
    errors = []
    client = Client("k", max_retries=0, on_error=lambda error, messages: errors.append(
        (type(error).__name__, str(error), len(messages))))
    client.track("user-1", "Signed Up")
    assert client.flush(5) is False
    client.close_and_flush(1)
    [(kind, text, count)] = errors
    assert (kind, count) == ("TransportError", 1)
    assert text.startswith("request to https://api.segment.io/v1/batch refused by "
                           "the segment_client pytest plugin during "
                           "test_a_client_that_forgot_the_fixture_sends_nothing.py::"
                           "test_forgot_the_fixture")
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*a request was refused:*", "*segment_recorder fixture*"])


def test_requests_mocked_by_responses_are_not_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import responses
from segment_client import Client

@responses.activate
def test_mocked():
    responses.add(responses.POST, "https://api.segment.io/v1/batch", json={})
    client = Client("k", max_retries=0)
    client.track("user-1", "Signed Up")
    assert client.flush(5) is True
    client.close_and_flush(1)
    assert len(responses.calls) == 1
"""
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
