"""The `segment-client` command against the real collector on 127.0.0.1."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from segment_client._cli import main
from segment_client._demo import demo_stream
from segment_client.collector import Collector


@pytest.fixture(name="collector")
def _collector() -> Iterator[Collector]:
    with Collector() as collector:
        yield collector


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never reach the real API from a developer's environment.
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
    monkeypatch.delenv("SEGMENT_HOST", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_track_delivers_and_prints_the_message_id(
    collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "track", "--host", collector.url, "--write-key", "k", "--user-id", "u-1",
        "--event", "Order Completed", "--properties", '{"revenue": 59.99}',
        "--context", '{"ip": "203.0.113.1"}', "--message-id", "cli-1",
        "--timestamp", "2024-05-01T12:00:00Z",
    )
    assert (code, out.strip(), err) == (0, "cli-1", "")
    [message] = collector.messages()
    assert message["event"] == "Order Completed"
    assert message["properties"] == {"revenue": 59.99}
    assert message["context"]["ip"] == "203.0.113.1"
    assert message["timestamp"].startswith("2024-05-01T12:00:00")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["identify", "--user-id", "u", "--traits", '{"plan": "pro"}'],
         {"traits": {"plan": "pro"}}),
        (["group", "--user-id", "u", "--group-id", "g"], {"groupId": "g"}),
        (["page", "--anonymous-id", "a", "--name", "Home"], {"name": "Home"}),
        (["screen", "--user-id", "u", "--name", "Settings"], {"name": "Settings"}),
        (["alias", "--previous-id", "a", "--user-id", "u"], {"previousId": "a"}),
    ],
)
def test_each_message_command(
    collector: Collector, capsys: pytest.CaptureFixture[str], argv: list[str],
    expected: dict[str, Any],
) -> None:
    code, _, err = run(capsys, *argv, "--host", collector.url, "--write-key", "k")
    assert (code, err) == (0, "")
    [message] = collector.messages()
    assert message["type"] == argv[0]
    assert {key: message[key] for key in expected} == expected


def test_environment_supplies_key_and_host(
    collector: Collector, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "env-key")
    monkeypatch.setenv("SEGMENT_HOST", collector.url)
    assert run(capsys, "track", "--user-id", "u", "--event", "E")[0] == 0
    assert collector.stats()["total"] == 1


def test_wrong_write_key_exits_1_with_the_reason_and_never_prints_the_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Collector(write_key="right-key") as collector:
        code, out, err = run(
            capsys, "track", "--host", collector.url, "--write-key", "secret-wrong-key",
            "--user-id", "u", "--event", "E",
        )
    assert code == 1
    assert out == ""
    assert "HTTP 401" in err and "invalid write key" in err
    assert "secret-wrong-key" not in err


def test_unreachable_collector_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = run(
        capsys, "track", "--host", f"http://127.0.0.1:{port}", "--write-key", "k",
        "--user-id", "u", "--event", "E", "--max-retries", "0", "--timeout", "5",
    )
    assert code == 1
    assert "not delivered" in err and f"connection refused to 127.0.0.1:{port}" in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["track", "--user-id", "u"], "--event"),
        (["track", "--user-id", "u", "--event", "E", "--properties", "[1]"], "--properties"),
        (["track", "--user-id", "u", "--event", "E", "--properties", "{bad"], "JSON object"),
        (["track", "--event", "E"], "user_id or anonymous_id"),
        (["track", "--user-id", "u", "--event", "E", "--host", "ftp://x"], "host must"),
        (["group", "--user-id", "u"], "--group-id"),
        (["alias", "--previous-id", "a"], "--user-id"),
        (["collector", "--fault", "status=900"], "--fault"),
        (["demo", "--users", "0"], "--users"),
        (["nope"], "invalid choice"),
        ([], "COMMAND"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    if argv and argv[0] in ("track", "group", "alias"):
        argv = [*argv, "--write-key", "k"]
        if "--host" not in argv:
            argv += ["--host", "http://127.0.0.1:9"]  # never reached: the usage is wrong
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert fragment in err


def test_missing_write_key_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "track", "--user-id", "u", "--event", "E",
                       "--host", "http://127.0.0.1:9")
    assert code == 2
    assert "SEGMENT_WRITE_KEY" in err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--help")[0] == 0
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("segment-client ")


def _expected_demo(seed: int = 7, users: int = 8) -> tuple[Counter[str], Counter[str]]:
    calls = list(demo_stream(seed, users))
    by_type = Counter(method for method, _ in calls)
    by_event = Counter(kwargs["event"] for method, kwargs in calls if method == "track")
    return by_type, by_event


def test_demo_summary_matches_the_collector(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "demo", "--json")
    assert (code, err) == (0, "")
    summary = json.loads(out)
    by_type, by_event = _expected_demo()
    sent = sum(by_type.values())
    assert 200 <= sent <= 500
    stats = summary["collector"]
    assert summary["sent"] == sent == summary["client"]["delivered"]
    assert (stats["total"], stats["unique"], stats["duplicates"]) == (sent, sent, 0)
    assert stats["by_type"] == dict(by_type)
    assert stats["by_event"] == dict(by_event)
    assert stats["batches"] == summary["client"]["batches"]
    assert len(by_type) == 4 and len({k["user_id"] for _, k in demo_stream() if
                                       k.get("user_id")}) == 8


def test_demo_text_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo", "--users", "3", "--seed", "2")
    assert code == 0
    by_type, by_event = _expected_demo(2, 3)
    total = sum(by_type.values())
    assert f"stored {total} ({total} unique, 0 duplicates)" in out
    type_line = next(line for line in out.splitlines() if "by type" in line)
    assert dict(re.findall(r"(\w+) (\d+)", type_line.split("by type", 1)[1])) == {
        k: str(v) for k, v in by_type.items()
    }
    assert f"Order Completed {by_event['Order Completed']}" in out


def test_demo_with_faults_still_delivers_everything(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo", "--json", "--fault", "status=500,rate=0.3",
                       "--fault", "drop,store,count=1")
    assert code == 0
    summary = json.loads(out)
    stats = summary["collector"]
    assert stats["unique"] == summary["sent"] == summary["client"]["delivered"]
    assert stats["duplicates"] == stats["fault_stored_messages"] > 0


def _read_until(process: subprocess.Popen[str], fragment: str) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if fragment in line:
            return line
    raise AssertionError(f"the process ended without printing {fragment!r}")


def _stop(process: subprocess.Popen[str]) -> int:
    try:
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_collector_command_serves_prints_batches_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "segment_client", "collector", "--port", "0", "--db",
         ":memory:", "--write-key", "cli-secret"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        banner = _read_until(process, "listening on")
        assert "cli-secret" not in banner
        url = re.search(r"http://127\.0\.0\.1:\d+", banner)
        assert url is not None
        body = {"batch": [{"type": "track", "userId": "u", "event": "E"}],
                "writeKey": "cli-secret"}
        assert requests.post(url.group(0) + "/v1/batch", json=body, timeout=5).ok
        line = _read_until(process, "batch")
        assert "1 msg" in line and "track 1" in line
        assert requests.post(url.group(0) + "/v1/batch", json={"batch": []},
                             timeout=5).status_code == 401
    finally:
        code = _stop(process)
    assert code == 0


def test_demo_keep_open_serves_the_page_until_stopped() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "segment_client", "demo", "--keep-open", "--users", "2"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = _read_until(process, "keeps serving")
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url is not None
        assert requests.get(url.group(0) + "/", timeout=5).status_code == 200
        assert requests.get(url.group(0) + "/v1/stats", timeout=5).json()["total"] > 0
    finally:
        code = _stop(process)
    assert code == 0


def test_collector_with_a_tracking_plan_records_violations(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--tracking-plan` makes the collector store each message's violations."""
    from segment_client._cli import _plan_validator

    validator = _plan_validator("tests/plans/native_shop.json")
    assert validator is not None
    with Collector(validator=validator) as collector:
        code, _, _ = run(
            capsys, "track", "--host", collector.url, "--write-key", "k", "--user-id", "u",
            "--event", "Order Completed", "--properties", '{"order_id": "", "revenue": -1}',
        )
        assert code == 0
        [event] = collector.events()
    assert event["violations"]
    assert any("revenue" in v for v in event["violations"])


def test_bad_tracking_plan_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text('{"events": {"X": {"properties": {"a": {"type": "nonsense"}}}}}')
    code, _, err = run(capsys, "demo", "--tracking-plan", str(plan))
    assert code == 2
    assert "--tracking-plan" in err


def test_demo_with_a_tracking_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "demo", "--json", "--tracking-plan", "tests/plans/native_shop.json"
    )
    assert code == 0
    # The demo's stream does not follow this shop plan: violations are recorded.
    assert json.loads(out)["collector"]["with_violations"] > 0
    code, out, _ = run(capsys, "demo", "--json")
    assert json.loads(out)["collector"]["with_violations"] == 0


def test_cli_output_never_shows_the_write_key(
    collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    """Neither success, failure nor usage output echoes the write key."""
    outputs = [
        run(capsys, "track", "--host", collector.url, "--write-key", "sekrit-key-1",
            "--user-id", "u", "--event", "E"),
        run(capsys, "track", "--host", "http://127.0.0.1:9", "--write-key", "sekrit-key-1",
            "--user-id", "u", "--event", "E", "--max-retries", "0"),
        run(capsys, "track", "--write-key", "sekrit-key-1", "--event", "E"),
    ]
    for code, out, err in outputs:
        assert "sekrit-key-1" not in out + err, (code, out, err)
    assert [code for code, _, _ in outputs] == [0, 1, 2]


def test_demo_with_a_write_key_sends_to_the_configured_host(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a write key set, the demo drives the same stream to $SEGMENT_HOST instead of an
    embedded collector (here a collector that requires that key)."""
    with Collector(write_key="real-key") as collector:
        monkeypatch.setenv("SEGMENT_WRITE_KEY", "real-key")
        monkeypatch.setenv("SEGMENT_HOST", collector.url)
        code, out, err = run(capsys, "demo", "--json")
        summary = json.loads(out)
        stats = collector.stats()
    assert (code, err) == (0, "")
    assert summary["collector"] is None
    assert summary["url"] == collector.url
    by_type, by_event = _expected_demo()
    assert summary["sent_by_type"] == dict(by_type)
    assert stats["unique"] == summary["client"]["delivered"] == sum(by_type.values())
    assert stats["by_event"] == dict(by_event)
    assert "real-key" not in out


def test_demo_local_flag_ignores_the_write_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "real-key")
    monkeypatch.setenv("SEGMENT_HOST", "http://127.0.0.1:9")  # would fail if used
    code, out, _ = run(capsys, "demo", "--local")
    assert code == 0 and "to a local collector" in out
    code, _, err = run(capsys, "demo", "--keep-open")
    assert code == 2 and "--local" in err


# -- usage, configuration and I/O errors: exit 2, one line, nothing sent -----------------


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--timeout", "-1"], "segment-client track: error: argument --timeout: expected "
         "seconds >= 0, got '-1' (see segment-client track --help)"),
        (["--timeout", "nan"], "argument --timeout: expected seconds >= 0, got 'nan'"),
        (["--max-retries", "-1"], "argument --max-retries: expected a number >= 0, got '-1'"),
        (["--properties", "[1]"], "--properties must be a JSON object, got list"),
        (["--timestamp", "not a date"], "timestamp: cannot parse 'not a date'"),
        (["--host", "ftp://x"], "host must start with http:// or https://"),
    ],
)
def test_a_bad_option_exits_2_in_one_line_and_sends_nothing(
    collector: Collector, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    argv = ["track", "--host", collector.url, "--write-key", "k", "--user-id", "u-1",
            "--event", "Signed Up", *extra]
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert expected in one_line(err)
    assert collector.stats()["requests"] == 0


def test_a_missing_id_exits_2_and_sends_nothing(
    collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "track", "--host", collector.url, "--write-key", "k",
                       "--event", "Signed Up")
    assert code == 2
    assert one_line(err) == "segment-client track: error: user_id or anonymous_id is required"
    assert collector.stats()["requests"] == 0


def test_collector_database_that_cannot_be_opened_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    db = tmp_path / "no" / "such" / "x.db"
    code, _, err = run(capsys, "collector", "--port", "0", "--db", str(db))
    assert code == 2
    assert one_line(err).startswith(
        f"segment-client collector: error: --db {db}: cannot open the database: "
    )


@pytest.mark.parametrize("value", ["99999", "-1", "http"])
def test_collector_port_out_of_range_exits_2(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, _, err = run(capsys, "collector", "--port", value, "--db", ":memory:")
    assert code == 2
    assert one_line(err).startswith("segment-client collector: error: argument --port: ")


def test_collector_port_in_use_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        code, _, err = run(capsys, "collector", "--port", str(busy), "--db", ":memory:")
    assert code == 2
    assert one_line(err).startswith(
        f"segment-client collector: error: cannot listen on 127.0.0.1:{busy}: "
    )


def test_an_unknown_fault_lists_the_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "collector", "--fault", "explode", "--db", ":memory:")
    assert code == 2
    line = one_line(err)
    assert line.startswith("segment-client collector: error: --fault 'explode': ")
    assert line.endswith(
        "a fault is comma-separated fields, one of the kinds status=CODE, drop or "
        "delay=SECONDS, with rate=0..1, count=N, retry_after=SECONDS or store "
        "(e.g. status=500,rate=0.2)"
    )
