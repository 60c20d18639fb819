"""Test configuration: fixture plugins for real infrastructure (see tests/fixtures/), and the
project's pinned tools (.tools/bin: helm, kubectl, promtool from .ci/install-tools.sh) on PATH, so
`pytest -q` after the README's set-up finds them without exporting anything."""

import os
from pathlib import Path

pytest_plugins = [
    "tests.fixtures.infra",
    "tests.fixtures.ledger",
]

_TOOLS = Path(__file__).resolve().parents[1] / ".tools" / "bin"
if _TOOLS.is_dir() and str(_TOOLS) not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = f"{_TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"
