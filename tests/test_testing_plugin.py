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
