"""A message the collector refuses for good, with a spool: isolated, reported, moved to
the dead-letter file (never retried forever), listed and re-sent by the command."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from segment_client import APIError, Client, DeliveryError
from segment_client._cli import main
from segment_client._spool import SpoolQueue
from segment_client._spool._deadletter import DEAD_LETTER, DeadLetters, message_bytes
from segment_client._spool._files import open_directory
from segment_client.collector import Collector

MESSAGES = 1000
POISON = 537


def _corrupt(message: dict[str, Any]) -> dict[str, Any]:
    if message["properties"]["i"] == POISON:
        message["timestamp"] = "not a time"  # a strict collector answers 400
    return message


def _spool_with_one_dead_letter(spool: Path) -> tuple[list[Any], list[int], str]:
    """1,000 messages through a strict collector; returns (errors, stored, poison id)."""
    errors: list[tuple[DeliveryError, list[dict[str, Any]]]] = []
    with Collector(strict=True) as collector:
        client = Client(
            "wk", host=collector.url, spool_dir=spool, flush_at=100, flush_interval=60,
            on_error=lambda error, messages: errors.append((error, messages)),
        )
        client.add_middleware(_corrupt)
        ids = [client.track("user-1", "E", {"i": i}) for i in range(MESSAGES)]
        assert client.close_and_flush(60) is False
        stats = client.stats()
        stored = [m["properties"]["i"] for m in collector.messages()]
    assert (stats.delivered, stats.failed, stats.queue_depth) == (MESSAGES - 1, 1, 0)
    return errors, stored, ids[POISON]


def _dead_lines(spool: Path) -> list[dict[str, Any]]:
    path = spool / DEAD_LETTER
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_poison_message_is_dead_lettered_and_nothing_is_stuck(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    errors, stored, poison_id = _spool_with_one_dead_letter(spool)
    assert sorted(stored) == [i for i in range(MESSAGES) if i != POISON]
    [(error, messages)] = errors
    assert isinstance(error, APIError) and error.status == 400
    assert [m["messageId"] for m in messages] == [poison_id]
    [entry] = _dead_lines(spool)
    assert entry["message"]["messageId"] == poison_id
    assert entry["message"]["timestamp"] == "not a time"
    assert (entry["status"], entry["kind"]) == (400, "APIError")
    assert "timestamp" in entry["response"] and entry["error"] == str(error)
    assert entry["time"].endswith("Z")
    # A second process on the directory: nothing waiting, nothing sent again.
    assert sorted(p.name for p in spool.iterdir()) == [DEAD_LETTER]
    with Collector() as collector:
        second = Client("wk", host=collector.url, spool_dir=spool)
        assert second.stats().queue_depth == 0
        assert second.close_and_flush(10)
        assert collector.stats()["total"] == 0
    assert sorted(p.name for p in spool.iterdir()) == [DEAD_LETTER]


def test_the_command_lists_the_dead_letters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool = tmp_path / "spool"
    _, _, poison_id = _spool_with_one_dead_letter(spool)
    capsys.readouterr()
    assert main(["spool", "dead-letters", str(spool)]) == 0
    out, err = capsys.readouterr()
    [line] = out.splitlines()
    assert f"  track  {poison_id}  400  HTTP 400" in line
    assert "1 dead letter(s)" in err
    assert main(["spool", "dead-letters", str(spool), "--json"]) == 0
    [entry] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert entry["message"]["messageId"] == poison_id


def test_resend_after_a_fix_delivers_and_empties_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool = tmp_path / "spool"
    _spool_with_one_dead_letter(spool)
    # Fixed on the collector's side: this one takes what it is sent without checking it.
    with Collector(discard=True) as collector:
        code = main(["spool", "resend", str(spool), "--write-key", "wk",
                     "--host", collector.url])
        stats = collector.stats()
    assert code == 0
    assert "1 of 1 dead letter(s) delivered; 0 kept" in capsys.readouterr().err
    assert (stats["total"], stats["unique"], stats["by_type"]) == (1, 1, {"track": 1})
    assert list(spool.iterdir()) == []


def test_resend_refused_again_keeps_the_message_with_the_new_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool = tmp_path / "spool"
    _, _, poison_id = _spool_with_one_dead_letter(spool)
    with Collector(strict=True) as collector:
        code = main(["spool", "resend", str(spool), "--write-key", "wk",
                     "--host", collector.url])
        assert collector.stats()["total"] == 0
    assert code == 1
    assert "0 of 1 dead letter(s) delivered; 1 kept" in capsys.readouterr().err
    [entry] = _dead_lines(spool)
    assert entry["message"]["messageId"] == poison_id and entry["status"] == 400
    assert sorted(p.name for p in spool.iterdir()) == [DEAD_LETTER]  # no taken file left


def test_resend_needs_a_write_key_and_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
    assert main(["spool", "resend", str(tmp_path)]) == 2
    assert "a write key is required" in capsys.readouterr().err
    assert main(["spool", "dead-letters", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_dead_letter_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    queue = SpoolQueue(tmp_path)
    (tmp_path / DEAD_LETTER).mkdir()  # something that is not a file is in the way
    queue.dead_letter(b'{"messageId":"x"}', APIError(400, "bad"))
    assert "could not write a message to the dead-letter file" in caplog.text
    queue.close()


def test_appends_from_many_threads_and_a_concurrent_take_lose_no_line(tmp_path: Path) -> None:
    dir_fd, trust = open_directory(str(tmp_path))
    dead = DeadLetters(dir_fd, trust)
    taken: list[dict[str, Any]] = []
    start = threading.Barrier(5)

    def append(worker: int) -> None:
        start.wait()
        for i in range(200):
            data = json.dumps({"messageId": f"{worker}-{i}"}).encode()
            assert dead.append(data, APIError(400, "no"))

    def take() -> None:
        start.wait()
        for _ in range(20):
            names, entries = dead.take()
            taken.extend(entries)
            dead.done(names)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    threads.append(threading.Thread(target=take))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names, rest = dead.take()
    ids = [json.loads(message_bytes(e))["messageId"] for e in taken + rest]
    assert sorted(ids) == sorted(f"{w}-{i}" for w in range(4) for i in range(200))
    dead.done(names)
    dead.close()
    assert list(tmp_path.iterdir()) == []


def test_dead_letters_of_several_processes_share_one_file(tmp_path: Path) -> None:
    first, second = SpoolQueue(tmp_path), SpoolQueue(tmp_path)
    spooled = b'{"messageId":"a","text":"caf\xc3\xa9 \\u2028"}'
    first.dead_letter(spooled, APIError(400, "bad a"))
    second.dead_letter(b'{"messageId":"b"}', APIError(400, "bad b"))
    first.close()
    second.close()
    assert [e["message"]["messageId"] for e in _dead_lines(tmp_path)] == ["a", "b"]
    dir_fd, trust = open_directory(str(tmp_path))
    dead = DeadLetters(dir_fd, trust)
    entries = [entry for _, entry in dead.entries()]
    dead.close()
    assert message_bytes(entries[0]) == spooled  # the bytes as spooled, not re-encoded
