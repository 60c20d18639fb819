"""One organism per data dir, and bad configuration refused before anything starts — with real
`titan up` / `titan infra down` processes.

* a second `titan up` on a data dir a running `titan up` holds exits 1 naming the holder's pid, and
  so does `titan infra down`;
* a lock left by a SIGKILLed holder is taken over, and the takeover is said;
* `--source replay:/nonexistent`, `--source bogus`, a TitanBrain with a bad field, a broken YAML file
  and a key file readable by others each exit 2 with the file/field/path named, before any server
  starts (no infra folder appears).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from titan.core.infra.lock import OrganismLock, lock_path
from titan.core.infra.procs import pid_alive

from ..e2e.procs import TITAN, clean_env
from ..util import wait_for_sync

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="titan-lock-"))
    path.chmod(0o755)  # PostgreSQL's unprivileged user must be able to enter it
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def titan(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TITAN, *args], env=clean_env(TITAN_DATA_DIR=str(data_dir)), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def lock_pid(data_dir: Path) -> int | None:
    try:
        return int(lock_path(data_dir).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def test_a_second_organism_and_infra_down_are_refused(data_dir: Path) -> None:
    log = data_dir / "first.log"
    with log.open("ab") as fh:
        first = subprocess.Popen([*TITAN, "up", "--headless", "--source", "sim", "--duration", "120s"],
                                 env=clean_env(TITAN_DATA_DIR=str(data_dir)), stdout=fh, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
    try:
        wait_for_sync(lambda: lock_pid(data_dir) == first.pid, timeout=60, interval=0.1)
        second = titan(data_dir, "up", "--headless", "--source", "sim", "--duration", "5s")
        assert second.returncode == 1, second.stderr
        assert f"pid {first.pid}" in second.stderr and "already runs" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr + second.stdout
        down = titan(data_dir, "infra", "down")
        assert down.returncode == 1 and f"pid {first.pid}" in down.stderr, down.stderr
        # the first one is unharmed: it goes on to start its children
        wait_for_sync(lambda: "starting organism" in log.read_text(errors="replace") or first.poll() is not None,
                      timeout=180, interval=0.2)
        assert first.poll() is None, log.read_text()[-3000:]
    finally:
        first.send_signal(signal.SIGTERM)
        try:
            first.wait(90)
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait()
    assert first.returncode == 0, log.read_text()[-3000:]
    # released on a clean exit: infra down now proceeds
    down = titan(data_dir, "infra", "down")
    assert down.returncode == 0, down.stderr


def test_a_stale_lock_of_a_killed_holder_is_taken_over(data_dir: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from titan.core.infra.lock import OrganismLock; "
         "OrganismLock.acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(600)", str(data_dir)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = titan(data_dir, "up", "--headless", "--source", "bogus")
        assert refused.returncode == 1 and f"pid {holder.pid}" in refused.stderr, refused.stderr
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert not pid_alive(holder.pid) and lock_pid(data_dir) == holder.pid  # the file is left behind
    taken = titan(data_dir, "up", "--headless", "--source", "bogus")
    output = taken.stdout + taken.stderr
    messages = [json.loads(line).get("msg", "") for line in output.splitlines() if line.startswith("{")]
    assert any(f"lock of pid {holder.pid}" in m and "no longer running" in m for m in messages), output
    assert taken.returncode == 2 and "unknown market data source" in taken.stderr  # got past the lock
    # and the lock is free again afterwards (released on exit)
    OrganismLock.acquire(data_dir).release()


def write_brain(folder: Path, trading_state: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "brain.yaml").write_text(
        f"apiVersion: titan.trading/v1alpha1\nkind: TitanBrain\nmetadata: {{name: titan}}\n"
        f"spec:\n  tradingState: {trading_state}\n")
    return folder


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--source", "replay:/nonexistent"), "/nonexistent does not exist"),
        (("--source", "replay:/a.tmd,/nonexistent-b"), "/a.tmd does not exist"),
        (("--source", "bogus"), "--source bogus: unknown market data source"),
        (("--source", "sim:seven"), "seed must be an integer"),
    ],
)
def test_bad_sources_are_refused_before_anything_starts(data_dir: Path, args: tuple[str, ...], expected: str) -> None:
    result = titan(data_dir, "up", "--headless", *args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert not (data_dir / "infra").exists() and not (data_dir / "logs").exists()


def test_a_bad_organism_file_is_named_with_its_field(data_dir: Path) -> None:
    bad = write_brain(data_dir / "bad", "Sideways")
    result = titan(data_dir, "up", "--headless", "--phases", str(bad))
    assert result.returncode == 2
    assert f"{bad / 'brain.yaml'}: TitanBrain 'titan': spec.tradingState" in result.stderr, result.stderr
    (bad / "brain.yaml").write_text("kind: TitanBrain\nspec: [1,\n")
    result = titan(data_dir, "up", "--headless", "--phases", str(bad))
    assert result.returncode == 2 and f"{bad / 'brain.yaml'}: line" in result.stderr
    assert "not valid YAML" in result.stderr
    assert not (data_dir / "infra").exists()


def test_a_key_file_readable_by_others_is_refused(data_dir: Path) -> None:
    keys = data_dir / "keys"
    keys.mkdir(mode=0o700)
    key = keys / "scavenger.key"
    key.write_text("a" * 64 + "\n")
    os.chmod(key, 0o644)
    result = titan(data_dir, "up", "--headless", "--source", "sim")
    assert result.returncode == 2 and f"{key}: key file is mode 0o644" in result.stderr, result.stderr
    assert not (data_dir / "infra").exists()


def test_cpus_this_machine_does_not_have_are_refused(data_dir: Path) -> None:
    result = titan(data_dir, "up", "--headless", "--source", "sim", "--cpus", "4096")
    assert result.returncode == 2 and "--cpus 4096: CPUs [4096] are not available" in result.stderr, result.stderr
    assert not (data_dir / "infra").exists()


def test_a_replay_whose_gateway_fails_ends_the_run_non_zero(data_dir: Path) -> None:
    """A file that exists but is no market data: the gateway exits non-zero once (a replay is not
    restarted), and `titan up` stops and exits 1 naming it instead of running on without data."""
    bogus = data_dir / "not-market-data.csv"
    bogus.write_text("this,is\nnot,a tape\n")
    result = titan(data_dir, "up", "--headless", "--source", f"replay:{bogus}", "--duration", "120s", timeout=200)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    assert "titan up stopped: gateway failed" in result.stderr, result.stderr
    output = result.stdout + result.stderr
    messages = [json.loads(line).get("msg", "") for line in output.splitlines() if line.startswith("{")]
    assert any(m.startswith("child failed: gateway") for m in messages), messages[-20:]
