"""Execution's outbox journal on real files: framing, torn tails, replay of what JetStream never
acknowledged, compaction of acknowledged segments, the one-process lock, and clean removal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from titan.core.config import Settings
from titan.execution.outbox import (
    FRAME,
    LOCK_NAME,
    Outbox,
    OutboxInUse,
    Record,
    RecordKind,
    encode,
    outbox_dir,
    scan,
)


def payload(i: int) -> bytes:
    return f"event-{i:05d}".encode() * 3


def seqs(records: list[Record]) -> list[int]:
    return [r.seq for r in records]


def kill(box: Outbox) -> None:
    """What the kernel does to a killed process's outbox: its descriptors closed (the lock with
    them), nothing else — no cursor written, no file removed."""
    os.close(box._fd)
    os.close(box._lock_fd)


def test_records_round_trip_through_a_segment(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    assert box.append([payload(1), payload(2)]) == 1
    assert box.append([payload(3)]) == 3
    (segment,) = box.segments()
    found = scan(segment.read_bytes())
    assert [(r.seq, r.payload) for r in found.events] == [(i, payload(i)) for i in (1, 2, 3)]
    assert found.torn_at is None and found.acked == 0


def test_what_was_not_acknowledged_is_replayed_after_a_kill(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    box.append([payload(i) for i in range(1, 6)])
    box.acknowledge(2)
    box.append([payload(6)])
    kill(box)  # nothing closed, nothing flushed beyond write()

    again = Outbox.open(tmp_path)
    assert seqs(again.backlog) == [3, 4, 5, 6]
    assert [r.payload for r in again.backlog] == [payload(i) for i in range(3, 7)]
    assert again.append([payload(7)]) == 7  # numbering continues
    assert again.take_backlog() and again.backlog == []


def test_a_torn_tail_is_dropped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    box = Outbox.open(tmp_path)
    box.append([payload(1), payload(2), payload(3)])
    (segment,) = box.segments()
    whole = segment.stat().st_size
    kill(box)
    with segment.open("r+b") as fh:  # the last record cut in the middle, as by a kill during write()
        fh.truncate(whole - 5)
    with caplog.at_level(logging.WARNING, logger="titan.execution.outbox"):
        again = Outbox.open(tmp_path)
    assert seqs(again.backlog) == [1, 2]
    assert any("torn" in r.getMessage() and str(segment) in r.getMessage() for r in caplog.records)
    assert again.append([payload(9)]) == 3  # the torn record's sequence is free again


@pytest.mark.parametrize("damage", ["zeros", "bad_checksum", "oversized_length", "half_header"])
def test_a_damaged_tail_never_stops_start_up(tmp_path: Path, damage: str) -> None:
    box = Outbox.open(tmp_path)
    box.append([payload(1), payload(2)])
    (segment,) = box.segments()
    kill(box)
    with segment.open("ab") as fh:
        if damage == "zeros":
            fh.write(b"\0" * 64)
        elif damage == "bad_checksum":
            frame = bytearray(encode(RecordKind.EVENT, 3, payload(3)))
            frame[-1] ^= 0xFF
            fh.write(bytes(frame))
        elif damage == "oversized_length":
            fh.write(FRAME.pack(2**31, 0) + b"x" * 20)
        else:
            fh.write(encode(RecordKind.EVENT, 3, payload(3))[:6])
    again = Outbox.open(tmp_path)
    assert seqs(again.backlog) == [1, 2]


def test_acknowledged_segments_are_deleted_and_the_rest_kept(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path, segment_bytes=200)  # about five records per segment
    for i in range(1, 31):
        box.append([payload(i)])
    assert len(box.segments()) >= 5
    box.acknowledge(18)
    for path in box.segments()[:-1]:  # every closed segment still holds an unacknowledged event
        assert max(r.seq for r in scan(path.read_bytes()).events) > 18
    on_disk = sorted(p for p in tmp_path.iterdir() if p.suffix == ".seg")
    assert on_disk == sorted(box.segments())
    kill(box)
    again = Outbox.open(tmp_path, segment_bytes=200)
    assert seqs(again.backlog) == list(range(19, 31))
    again.acknowledge(30)
    assert len(again.segments()) == 1  # only the segment being written
    assert again.unacknowledged == 0


def test_bounded_while_everything_is_acknowledged(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path, segment_bytes=4096)
    for i in range(1, 2001):
        box.append([payload(i)])
        box.acknowledge(i)
    total = sum(p.stat().st_size for p in tmp_path.iterdir() if p.suffix == ".seg")
    assert total < 2 * 4096 + 200
    kill(box)
    assert Outbox.open(tmp_path).backlog == []


def test_the_acknowledged_cursor_survives_rotation_and_restart(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path, segment_bytes=150)
    box.append([payload(i) for i in range(1, 4)])  # one batch, one segment, then a new one
    box.acknowledge(2)
    box.append([payload(4)])
    kill(box)
    again = Outbox.open(tmp_path, segment_bytes=150)
    assert seqs(again.backlog) == [3, 4]


def test_close_removes_the_outbox_only_when_everything_is_acknowledged(tmp_path: Path) -> None:
    directory = tmp_path / "box"
    box = Outbox.open(directory)
    box.append([payload(1), payload(2)])
    box.acknowledge(1)
    box.close()
    assert seqs(Outbox.open(directory).backlog) == [2]  # kept for the next start (the lock went with close)

    directory2 = tmp_path / "box2"
    box = Outbox.open(directory2)
    box.append([payload(1)])
    box.acknowledge(1)
    box.close()
    assert not directory2.exists()


def test_one_process_per_outbox(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    holder = (tmp_path / LOCK_NAME).read_text().strip()
    assert holder == str(os.getpid())
    code = (f"from pathlib import Path; from titan.execution.outbox import Outbox\n"
            f"Outbox.open(Path({str(tmp_path)!r}))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert other.returncode != 0
    assert f"in use by pid {os.getpid()}" in other.stderr
    with pytest.raises(OutboxInUse):
        Outbox.open(tmp_path)  # a second open in this process is refused too
    box.close()


def test_a_killed_holder_leaves_a_lock_the_next_start_takes(tmp_path: Path) -> None:
    code = (f"import os; from pathlib import Path; from titan.execution.outbox import Outbox\n"
            f"b = Outbox.open(Path({str(tmp_path)!r})); b.append([b'x' * 10]); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    box = Outbox.open(tmp_path)
    assert seqs(box.backlog) == [1]
    box.close()


def test_fsync_mode_writes_the_same_records(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path, fsync=True)
    box.append([payload(1), payload(2)])
    kill(box)
    assert seqs(Outbox.open(tmp_path, fsync=True).backlog) == [1, 2]


def test_the_outbox_directory_from_settings(tmp_path: Path) -> None:
    assert outbox_dir(Settings(data_dir=tmp_path, namespace="")) == tmp_path / "outbox" / "default"
    assert outbox_dir(Settings(data_dir=tmp_path, namespace="blue")) == tmp_path / "outbox" / "blue"
    assert outbox_dir(Settings(data_dir=tmp_path, outbox_dir=tmp_path / "mounted")) == tmp_path / "mounted"
