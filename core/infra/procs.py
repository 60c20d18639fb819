"""Process and port helpers for the embedded servers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path


class InfraError(RuntimeError):
    """Embedded infrastructure could not be started or stopped; the message says why and what to do."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float, host: str = "127.0.0.1", pid: int | None = None) -> None:
    """Poll a TCP port until it accepts connections (and the process, if given, is alive)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port, host):
            return
        if pid is not None and not pid_alive(pid):
            raise InfraError(f"process {pid} exited before listening on {host}:{port}")
        time.sleep(0.05)
    raise InfraError(f"nothing listened on {host}:{port} within {timeout:.0f}s")


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        if stat.read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL. Reaps the process if it is our child."""
    if not pid_alive(pid):
        _reap(pid)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
