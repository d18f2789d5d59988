"""The spool in a directory it cannot trust: modes, owners, planted symlinks, FIFOs and
other users' files. Nothing outside the directory may change, nothing planted is sent."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from segment_client import Client, ConfigurationError
from segment_client._json import dumps
from segment_client._spool import SpoolQueue
from segment_client.testing import RecordingTransport

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def _message(i: int, prefix: str) -> bytes:
    return dumps({"type": "track", "event": "E", "userId": "u", "messageId": f"{prefix}-{i}"})


def _dead_writer(directory: Path, count: int, prefix: str) -> tuple[Path, Path]:
    """The files a crashed process leaves: (its ack file, its segment)."""
    directory.mkdir(mode=0o700, exist_ok=True)
    queue = SpoolQueue(directory)
    for i in range(count):
        queue.put(_message(i, prefix))
    ack, segment = directory / queue._own.ack_name, directory / queue._live_seg.name
    queue._forget()
    return ack, segment


def _ids(transport: RecordingTransport) -> list[str]:
    return [m["messageId"] for m in transport.messages]


def test_the_directory_is_created_private(tmp_path: Path) -> None:
    spool = tmp_path / "a" / "spool"
    # flush_interval=60: nothing is sent (and no file removed) before the close.
    client = Client("k", transport=RecordingTransport(), spool_dir=spool, flush_interval=60)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    client.track("u", "E")
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in spool.iterdir())
    assert client.close_and_flush(5)


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o703])
def test_a_directory_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    spool.chmod(mode)
    with pytest.raises(ConfigurationError, match="writable by other users"):
        Client("k", transport=RecordingTransport(), spool_dir=spool)
    assert list(spool.iterdir()) == []


def test_a_group_writable_directory_needs_the_shared_group_option(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    spool.chmod(0o770)
    with pytest.raises(ConfigurationError, match="spool_shared_group=True"):
        SpoolQueue(spool)
    queue = SpoolQueue(spool, shared_group=True)
    queue.put(_message(0, "m"))
    # Shared deliberately: the group may adopt these files, so it may read them.
    assert {stat.S_IMODE(p.stat().st_mode) for p in spool.iterdir()} == {0o660}
    assert queue.take(10, 500_000) == [_message(0, "m")]
    queue.ack(1)
    queue.close()



def test_the_client_option_spool_shared_group_reaches_the_spool(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    spool.chmod(0o770)
    with pytest.raises(ConfigurationError, match="spool_shared_group=True"):
        Client("k", transport=RecordingTransport(), spool_dir=spool)
    with pytest.raises(ConfigurationError, match="spool_shared_group must be True or False"):
        Client("k", transport=RecordingTransport(), spool_dir=spool, spool_shared_group=1)
    transport = RecordingTransport()
    client = Client("k", transport=transport, spool_dir=spool, spool_shared_group=True)
    client.track("u", "Shared")
    assert client.close_and_flush(5)
    assert [m["event"] for m in transport.messages] == ["Shared"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in spool.iterdir() if p.is_file()} <= {0o660}

@root_only
def test_a_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    os.chown(spool, NOBODY, NOBODY)
    with pytest.raises(ConfigurationError, match=f"owned by uid {NOBODY}"):
        Client("k", transport=RecordingTransport(), spool_dir=spool)


def test_planted_symlinks_are_never_followed(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    # Outside the directory: a file in the spool's own format holding 250 events, as
    # an attacker would craft it, and a file of the user's.
    _, crafted = _dead_writer(tmp_path / "elsewhere", 250, "planted")
    victim = tmp_path / "precious.txt"
    victim.write_bytes(b"x" * 65_545)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (crafted, victim)}
    # In the directory: a dead writer whose segment is a symlink to the crafted file,
    # and one whose ack file is a symlink to the victim.
    wid = crafted.name.split(".")[0]
    (spool / f"{wid}.ack").write_bytes(b"")
    (spool / crafted.name).symlink_to(crafted)
    (spool / "00000000000000aa-1-abcdef.ack").symlink_to(victim)
    (spool / "00000000000000aa-1-abcdef.00000000.seg").symlink_to(victim)
    planted = {p.name for p in spool.iterdir()}
    client = make_client(spool_dir=spool)
    client.track("u", "E", message_id="mine")
    assert client.close_and_flush(5)
    assert _ids(transport) == ["mine"]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (crafted, victim)} == before
    assert {p.name for p in spool.iterdir()} == planted  # left alone, not removed


def test_a_planted_fifo_does_not_hang_the_client(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "00000000000000aa-1-abcdef.00000000.seg")
    (tmp_path / "00000000000000aa-1-abcdef.ack").write_bytes(b"")
    client = make_client(spool_dir=tmp_path)
    client.track("u", "E", message_id="mine")
    assert client.close_and_flush(5)
    assert _ids(transport) == ["mine"]


@root_only
def test_files_of_another_user_are_left_alone(
    make_client: Callable[..., Client], transport: RecordingTransport, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    ack, segment = _dead_writer(spool, 40, "foreign")
    for path in (ack, segment):
        os.chown(path, NOBODY, NOBODY)
    # And one of ours whose segment alone belongs to someone else.
    _, mixed = _dead_writer(spool, 5, "mixed")
    os.chown(mixed, NOBODY, NOBODY)
    before = {p.name: (p.read_bytes(), p.stat().st_uid) for p in spool.iterdir()}
    client = make_client(spool_dir=spool)
    client.track("u", "E", message_id="mine")
    assert client.close_and_flush(5)
    assert _ids(transport) == ["mine"]
    assert client.stats().dropped == {}
    after = {p.name: (p.read_bytes(), p.stat().st_uid) for p in spool.iterdir()}
    mixed_ack = mixed.name.split(".")[0] + ".ack"
    # The ack file of the mixed writer is ours and was only locked and released.
    assert after == before | {mixed_ack: after[mixed_ack]}
    shutil.rmtree(spool)
