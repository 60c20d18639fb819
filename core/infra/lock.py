"""One organism per data dir: an exclusive ``flock`` on ``<data>/run/organism.lock``, with the holder's
pid written in the file.

The kernel releases a ``flock`` when its holder dies, however it dies (SIGKILL included), so a lock
file left by a killed run is stale exactly when nobody holds the lock: the next run takes it over
and says whose it was. The pid in the file is only for the message; the lock itself decides."""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path


def lock_path(data_dir: Path) -> Path:
    return data_dir / "run" / "organism.lock"


class OrganismRunning(RuntimeError):
    """Another process holds the data dir's organism lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "a process whose pid is not recorded"
        super().__init__(f"an organism already runs on this data dir ({who}; lock {path}). Stop it first "
                         "(Ctrl-C in its terminal, or `kill -TERM <pid>`), or use another TITAN_DATA_DIR.")
        self.path = path
        self.pid = pid


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(path.read_text().split()[0])
    return None


@dataclass
class OrganismLock:
    """Held by the one `titan up` of a data dir for its whole life; ``stale_pid`` names the killed run
    whose lock file was taken over (None when the lock was free and clean)."""

    path: Path
    fd: int = -1
    stale_pid: int | None = None

    @classmethod
    def acquire(cls, data_dir: Path) -> OrganismLock:
        path = lock_path(data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OrganismRunning(path, _read_pid(path)) from None
        previous = _read_pid(path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        return cls(path, fd, previous if previous not in (None, os.getpid()) else None)

    def release(self) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing the descriptor drops the flock
        self.fd = -1


def refuse_if_running(data_dir: Path) -> None:
    """Raise OrganismRunning (naming the holder's pid) when a process holds ``data_dir``'s lock; a
    lock file left by a killed run does not count."""
    path = lock_path(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OrganismRunning(path, _read_pid(path)) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
