"""Test configuration: fixture plugins for real infrastructure (see tests/fixtures/), the project's
pinned tools (.tools/bin: helm, kubectl, promtool from .ci/install-tools.sh) on PATH, so `pytest -q`
after the README's set-up finds them without exporting anything, and a guard: no test may leave an
execution outbox behind in the default data dir; nor a logging handler on the root logger."""

import contextlib
import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from titan.core.config import default_data_dir
from titan.core.logging import HANDLER_NAME

pytest_plugins = [
    "tests.fixtures.infra",
    "tests.fixtures.ledger",
]

_TOOLS = Path(__file__).resolve().parents[1] / ".tools" / "bin"
if _TOOLS.is_dir() and str(_TOOLS) not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = f"{_TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """A CLI command run in a test sets up logging as its process would: a handler of its own on the
    root logger (``setup_logging``'s), bound to the stderr of that moment (a ``CliRunner``'s, gone
    after the test). That handler is taken off after the test and the root level put back, so no later
    test's output gets what it writes."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    root.setLevel(level)


def abandoned_outboxes(root: Path) -> set[Path]:
    """Outbox directories under ``root`` whose lock no process holds: left by an execution that
    ended without emptying it (a running one holds its lock, a clean stop removes the directory)."""
    found: set[Path] = set()
    with contextlib.suppress(FileNotFoundError):
        for directory in root.iterdir():
            try:
                fd = os.open(directory / "LOCK", os.O_RDONLY)
            except OSError:
                found.add(directory)  # no lock file: nobody holds it either
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                found.add(directory)
            except BlockingIOError:
                pass
            finally:
                os.close(fd)
    return found


@pytest.fixture(scope="session", autouse=True)
def temporary_data_dir() -> Iterator[None]:
    """Settings built in a test (an in-process execution runtime, a CLI run inheriting the environment)
    without a data dir of their own use a temporary one, never the user's (``TITAN_DATA_DIR`` set
    by the caller is kept)."""
    if os.environ.get("TITAN_DATA_DIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="titan-test-data-") as path:
        os.chmod(path, 0o755)  # as root, embedded PostgreSQL's unprivileged user must be able to enter it
        os.environ["TITAN_DATA_DIR"] = path
        try:
            yield
        finally:
            os.environ.pop("TITAN_DATA_DIR", None)


@pytest.fixture(scope="session", autouse=True)
def no_outbox_left_in_the_default_data_dir() -> Iterator[None]:
    """Every execution a test starts gets a temporary data dir (``TITAN_DATA_DIR``); one that falls
    back to the default would leave its outbox where the next real execution replays it."""
    root = default_data_dir() / "outbox"
    before = abandoned_outboxes(root)
    yield
    left = sorted(abandoned_outboxes(root) - before)
    if left:
        pytest.fail(f"tests left execution outboxes in the default data dir: {', '.join(map(str, left))} "
                    "(give the execution a temporary TITAN_DATA_DIR)", pytrace=False)
