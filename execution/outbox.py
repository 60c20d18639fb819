"""Execution's durable outbox: an append-only journal of the events execution produced and JetStream
has not acknowledged yet, so an event survives a kill of the process while NATS is unreachable.

* **Where.** One directory per execution instance (``TITAN_OUTBOX_DIR``, by default
  ``<TITAN_DATA_DIR>/outbox/<namespace or "default">``), held with an exclusive ``flock`` on its
  ``LOCK`` file (the holder's pid inside): a second execution on the same outbox is refused.
* **Segments.** Records go to segment files ``<first sequence, 20 digits>.seg``; a new one is started
  at every open and when the current one passes ``segment_bytes``. A segment whose every event
  JetStream acknowledged is deleted, so the directory holds the unacknowledged events plus at most
  about one segment of acknowledged ones.
* **Frames.** ``length u32 | crc32 u32 | body`` (little-endian), body ``kind u8 | sequence u64 |
  payload``. An ``EVENT`` record's payload is one serialized ``titan.v1.Event``; an ``ACKED`` record
  (no payload) says every event up to its sequence is in JetStream. The frame ends the scan of a
  segment at the first short, zero, oversized or mis-checksummed frame: a kill during a write leaves a
  torn tail, which is dropped with a warning.
* **Durability.** :meth:`Outbox.append` is one ``write()`` per batch: once it returns, the records are
  in the OS page cache and survive a kill of the process. With ``fsync`` the batch is also
  ``fdatasync``-ed (and a new segment's directory entry synced) before it returns, so it survives a
  machine crash. ``ACKED`` records are never synced: losing one only means re-publishing events
  JetStream and the ledger already have (both drop them by event id).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from titan.core.config import Settings

log = logging.getLogger("titan.execution.outbox")

FRAME = struct.Struct("<II")  # body length, crc32 of the body
HEAD = struct.Struct("<BQ")  # record kind, sequence
MAX_BODY = 64 * 1024 * 1024
SEGMENT_SUFFIX = ".seg"
LOCK_NAME = "LOCK"
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024


class RecordKind(IntEnum):
    EVENT = 1
    ACKED = 2


@dataclass(frozen=True)
class Record:
    """One journaled event: its sequence in this outbox and the serialized ``titan.v1.Event``."""

    seq: int
    payload: bytes


@dataclass(frozen=True)
class SegmentScan:
    """What one segment file holds: its event records in order, the highest ACKED sequence seen, and
    where a torn or corrupt frame ended the scan (None when the file ended cleanly)."""

    events: tuple[Record, ...]
    acked: int
    torn_at: int | None
    size: int

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else 0


class OutboxInUse(RuntimeError):
    """Another process holds this outbox."""


def outbox_dir(settings: Settings) -> Path:
    """The outbox directory of the execution configured by ``settings``."""
    if settings.outbox_dir is not None:
        return settings.outbox_dir
    return settings.data_dir / "outbox" / (settings.namespace or "default")


def encode(kind: RecordKind, seq: int, payload: bytes = b"") -> bytes:
    """One framed record."""
    head = HEAD.pack(kind, seq)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return FRAME.pack(len(head) + len(payload), crc) + head + payload


def scan(data: bytes) -> SegmentScan:
    """Read the records of one segment's bytes, up to the first frame that does not check."""
    events: list[Record] = []
    acked = 0
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < FRAME.size:
            break
        length, crc = FRAME.unpack_from(data, pos)
        start = pos + FRAME.size
        if length < HEAD.size or length > MAX_BODY or start + length > end:
            break
        body = memoryview(data)[start:start + length]
        if zlib.crc32(body) != crc:
            break
        kind, seq = HEAD.unpack_from(body)
        if kind == RecordKind.EVENT:
            events.append(Record(seq, bytes(body[HEAD.size:])))
        elif kind == RecordKind.ACKED:
            acked = max(acked, seq)
        else:
            break
        pos = start + length
    return SegmentScan(tuple(events), acked, pos if pos < end else None, end)


@dataclass
class _Segment:
    path: Path
    last_seq: int  # the last event sequence in it (0: none)


class Outbox:
    """The journal of one execution instance. Not thread-safe: one event loop appends and acknowledges."""

    def __init__(self, directory: Path, lock_fd: int, *, fsync: bool, segment_bytes: int,
                 closed: list[_Segment], acked: int, next_seq: int, backlog: list[Record]) -> None:
        self.directory = directory
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self._lock_fd = lock_fd
        self._closed = closed
        self._acked = acked
        self._next = next_seq
        self.backlog = backlog  # events journaled before this open and not acknowledged: replay these
        self._fd = -1
        self._active = _Segment(directory, 0)
        self._size = 0
        self._drop_acknowledged()  # first: an empty old segment may carry the name of the new one
        self._start_segment()

    # --- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, directory: Path, *, fsync: bool = False,
             segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> Outbox:
        """Lock ``directory``, read every segment (dropping torn tails), delete the fully acknowledged
        ones and start a new segment. ``backlog`` holds what is left to publish, in order."""
        directory.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock(directory)
        try:
            closed: list[_Segment] = []
            acked = 0
            last = 0
            events: list[Record] = []
            for path in sorted(directory.glob("*" + SEGMENT_SUFFIX)):
                found = scan(path.read_bytes())
                if found.torn_at is not None:
                    log.warning("outbox %s: dropped %d bytes after byte %d (a torn or corrupt record: a kill "
                                "during a write leaves one)", path, found.size - found.torn_at, found.torn_at)
                acked = max(acked, found.acked)
                last = max(last, found.last_seq)
                events.extend(found.events)
                closed.append(_Segment(path, found.last_seq))
            backlog = [r for r in events if r.seq > acked]
            outbox = cls(directory, lock_fd, fsync=fsync, segment_bytes=segment_bytes, closed=closed,
                         acked=acked, next_seq=max(last, acked) + 1, backlog=backlog)
        except BaseException:
            os.close(lock_fd)
            raise
        return outbox

    # --- reading ------------------------------------------------------------------------------
    @property
    def acked(self) -> int:
        """Every event up to this sequence is acknowledged by JetStream."""
        return self._acked

    @property
    def last_seq(self) -> int:
        """The sequence of the newest event journaled (0: none yet)."""
        return self._next - 1

    @property
    def unacknowledged(self) -> int:
        return self._next - 1 - self._acked

    def take_backlog(self) -> list[Record]:
        """The events to replay, handed over once (the outbox keeps no copy in memory)."""
        backlog, self.backlog = self.backlog, []
        return backlog

    def segments(self) -> list[Path]:
        return [s.path for s in self._closed] + [self._active.path]

    # --- writing ------------------------------------------------------------------------------
    def append(self, payloads: Sequence[bytes]) -> int:
        """Journal one batch of serialized events with one ``write()`` (and ``fdatasync`` when
        ``fsync``); returns the sequence of the first. Raises OSError when the write fails; the
        segment is then cut back to its last whole record and a new one started."""
        first = self._next
        if not payloads:
            return first
        if self._fd < 0:  # a failed write left no usable segment: start one first
            self._rotate()
        frames = [encode(RecordKind.EVENT, first + i, p) for i, p in enumerate(payloads)]
        self._write(b"".join(frames), sync=self.fsync)
        self._next = first + len(payloads)
        self._active.last_seq = self._next - 1
        if self._size >= self.segment_bytes:
            try:
                self._rotate()
            except OSError as exc:  # the batch is journaled; the next append starts a segment
                log.warning("outbox %s: starting a new segment failed: %s", self.directory, exc)
        return first

    def acknowledge(self, upto: int) -> None:
        """Every event up to ``upto`` is in JetStream: record it, delete the segments that holds."""
        upto = min(upto, self._next - 1)
        if upto <= self._acked:
            return
        self._acked = upto
        try:
            self._write(encode(RecordKind.ACKED, upto), sync=False)
        except OSError as exc:  # the cursor only saves re-publishing: the events are safe either way
            log.warning("outbox %s: recording the acknowledged cursor failed: %s", self.directory, exc)
        self._drop_acknowledged()

    def close(self) -> None:
        """Close the journal; when JetStream has every event, remove its files (nothing to replay)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._acked >= self._next - 1:
            for segment in [*self._closed, self._active]:
                segment.path.unlink(missing_ok=True)
            self._closed = []
            (self.directory / LOCK_NAME).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.directory.rmdir()
        else:
            log.warning("outbox %s: %d events not yet in JetStream are kept for the next start",
                        self.directory, self.unacknowledged)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # --- segments -----------------------------------------------------------------------------
    def _write(self, data: bytes, *, sync: bool) -> None:
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if sync:
                os.fdatasync(self._fd)
        except OSError:
            try:  # never leave a torn frame in front of later ones
                os.ftruncate(self._fd, self._size)
            except OSError:  # then the next append starts a new segment
                self._retire_active()
            raise
        self._size += len(data)

    def _start_segment(self) -> None:
        path = self.directory / f"{self._next:020d}{SEGMENT_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._active = _Segment(path, 0)
        self._size = os.fstat(self._fd).st_size
        if self.fsync:
            _sync_directory(self.directory)
        self._write(encode(RecordKind.ACKED, self._acked), sync=False)  # the cursor travels along

    def _retire_active(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
            self._closed.append(self._active)

    def _rotate(self) -> None:
        self._retire_active()
        self._drop_acknowledged()
        self._start_segment()

    def _drop_acknowledged(self) -> None:
        """Delete every closed segment whose events are all acknowledged."""
        keep = []
        for segment in self._closed:
            if segment.last_seq <= self._acked:
                segment.path.unlink(missing_ok=True)
            else:
                keep.append(segment)
        self._closed = keep


def _lock(directory: Path) -> int:
    """Take the outbox's exclusive lock (the holder's pid in the file); refuse when another holds it."""
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise OutboxInUse(f"the execution outbox {directory} is in use by pid {holder}: one execution per "
                          "outbox (give each its own TITAN_OUTBOX_DIR or TITAN_NAMESPACE)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
