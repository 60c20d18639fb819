"""`titan up` as a person sees it: driven in a real terminal (tmux) at 80x24 and at 200x50, the
screen read back with capture-pane; then `titan status` and `titan report` after it stopped."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.util import wait_for_sync

pytestmark = pytest.mark.slow
TITAN = Path(sys.executable).parent / "titan"


def _tmux() -> str:
    path = shutil.which("tmux")
    if path is None:
        message = "tmux is not installed (apt-get install tmux; .ci/install-tools.sh does it as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # A fresh organism per test (a second run would resume the first one's positions on a new
    # simulated market). Not tmp_path: as root, PostgreSQL's unprivileged user must enter it.
    path = Path(tempfile.mkdtemp(prefix="titan-up-tty-"))
    path.chmod(0o755)
    yield path
    subprocess.run([str(TITAN), "infra", "down"], env=_env(path), capture_output=True, timeout=120, check=False)
    shutil.rmtree(path, ignore_errors=True)


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TITAN_PG_DSN", "TITAN_NATS_URL", "TITAN_KUBE_CONTEXT",
                                                           "TITAN_KUBE_NAMESPACE", "COLUMNS", "LINES")}
    return env | {"TITAN_DATA_DIR": str(data_dir), "TERM": "xterm-256color"}


class Terminal:
    def __init__(self, tmux: str, width: int, height: int, data_dir: Path) -> None:
        self.tmux, self.width, self.height = tmux, width, height
        self.name = f"titan-test-{uuid.uuid4().hex[:8]}"
        self.data_dir = data_dir
        self.done = data_dir / f"{self.name}.rc"

    def start(self, *args: str) -> None:
        env = _env(self.data_dir)
        exports = " ".join(f"{k}={_quote(v)}" for k, v in env.items()
                           if k.startswith("TITAN_") or k in ("PATH", "TERM"))
        command = f"env {exports} {TITAN} {' '.join(args)}; echo $? > {self.done}; sleep 3600"
        subprocess.run([self.tmux, "new-session", "-d", "-s", self.name, "-x", str(self.width), "-y",
                        str(self.height), command], check=True, env=env, timeout=30)

    def screen(self) -> list[str]:
        out = subprocess.run([self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                             timeout=30, check=False).stdout
        return out.splitlines()

    def exit_code(self) -> int | None:
        try:
            return int(self.done.read_text().strip())
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        subprocess.run([self.tmux, "kill-session", "-t", self.name], capture_output=True, timeout=30, check=False)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _text(lines: list[str]) -> str:
    return "\n".join(lines)


def _watch(width: int, height: int, data_dir: Path) -> tuple[list[str], list[str]]:
    """Run `titan up` for a while; return the screen once the organism trades on data, and one after the
    scripted stop-run (40 s in)."""
    term = Terminal(_tmux(), width, height, data_dir)
    term.start("up", "--duration", "75s", "--stop-run-at", "40s")
    try:
        def settled() -> list[str] | None:
            lines = term.screen()
            text = _text(lines)
            if term.exit_code() is not None:
                raise AssertionError(f"titan up ended early:\n{text}")
            # equity from execution's snapshots, and the Brain's allocation for every phase
            if re.search(r"equity [\d,]+\.\d\d", text) and "Active" in text and "stop-run in" in text:
                return lines
            return None

        def after_the_stop_run() -> list[str] | None:  # still running, 50 s or more in
            lines = term.screen()
            up = re.search(r"up (\d+)m(\d\d)s", _text(lines))
            return lines if term.exit_code() is None and up and int(up[1]) * 60 + int(up[2]) >= 50 else None

        shown = wait_for_sync(settled, timeout=240, interval=1)
        late = wait_for_sync(after_the_stop_run, timeout=120, interval=1)
        wait_for_sync(lambda: term.exit_code() is not None, timeout=240, interval=1)
        assert term.exit_code() == 0, _text(term.screen())
        return shown, late
    finally:
        term.close()


def _panel_bodies(lines: list[str]) -> dict[str, list[str]]:
    """Panel title -> the text lines inside it (rich draws ╭─ title ─╮ ... ╰──╯)."""
    panels: dict[str, list[str]] = {}
    open_titles: list[tuple[int, str]] = []
    for line in lines:
        for match in re.finditer(r"╭─+ ([^─]+?) ─+╮", line):
            open_titles.append((match.start(), match.group(1)))
            panels[match.group(1)] = []
        for start, title in open_titles:
            cell = line[start:]
            if cell.startswith("│"):
                end = cell.find("│", 1)
                body = cell[1:end].strip() if end > 0 else ""
                if body:
                    panels[title].append(body)
        if "╰" in line and open_titles:
            open_titles = [(s, t) for s, t in open_titles if not line[s:].startswith("╰")]
    return panels


def test_up_at_80x24_shows_every_panel_with_rows_then_status_and_report_work(data_dir: Path) -> None:
    shown, _ = _watch(80, 24, data_dir)
    assert len(shown) <= 24 and all(len(line) <= 80 for line in shown)
    text = _text(shown)
    panels = _panel_bodies(shown)
    assert {"Titan", "Allocation", "Open positions", "Recent signals"} <= set(panels), text
    assert all(panels[title] for title in panels), f"an empty panel:\n{text}"
    allocation = _text(panels["Allocation"])
    for phase in ("scavenger", "hunter", "sentinel"):
        assert phase in allocation, text
    assert re.search(r"ai-quant\s+cannot run", allocation), text  # enabled in the samples, no runtime
    assert "source sim" in text and re.search(r"up \d+m\d\ds", text), text
    money = re.findall(r"[+-]?\d[\d,]*\.\d+", allocation)
    assert money and all(len(m.split(".")[1]) == 2 for m in money), allocation  # cents, not raw decimals

    env = _env(data_dir)
    status = subprocess.run([str(TITAN), "status"], env=env, capture_output=True, text=True, timeout=180, check=False)
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr + status.stdout
    assert "started the embedded PostgreSQL and NATS" in status.stderr
    assert re.search(r"equity [\d,]+\.\d\d", status.stdout) and "running no" in status.stdout
    report = subprocess.run([str(TITAN), "report", "--out", str(data_dir / "report")], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert report.returncode == 0, report.stderr
    assert (data_dir / "report" / "report.html").stat().st_size > 0 and (data_dir / "report" / "equity.png").exists()
    infra = subprocess.run([str(TITAN), "infra", "status"], env=env, capture_output=True, text=True, timeout=60,
                           check=True).stdout
    assert infra.count("stopped") == 2, infra  # what status/report started, they stopped


def test_up_at_200x50_shows_the_full_layout(data_dir: Path) -> None:
    shown, late = _watch(200, 50, data_dir)
    assert len(shown) <= 50 and all(len(line) <= 200 for line in shown)
    text = _text(shown)
    panels = _panel_bodies(shown)
    assert {"Equity", "Organism", "Allocation", "Open positions", "Recent signals"} <= set(panels), text
    assert all(panels[title] for title in panels), f"an empty panel:\n{text}"
    assert "notional" in text and "lev" in text  # the wide allocation table's extra columns
    positions = _panel_bodies(late)["Open positions"]
    if positions != ["no open positions"]:  # after the scripted stop-run: the wide positions table
        assert positions[0].split() == ["phase", "symbol", "qty", "entry", "mark", "uPnL"], positions
    assert re.search(r"realized [+-][\d,]+\.\d\d\s+unrealized [+-][\d,]+\.\d\d\s+fees [+-][\d,]+\.\d\d", text), text
    assert "stop-run in" in text and "ack µs" in text
    assert "stop-run in" not in _text(late)  # after 40 s the scripted stop-run is behind us
