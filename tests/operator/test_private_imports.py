"""The `no_private_imports` import-linter contract: it finds imports of kopf's private modules (the
operator's old `from kopf._cogs.clients import api`) and keeps public ones; run through `lint-imports`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from titan.operator.private_imports import private_targets

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("from kopf._cogs.clients import api as kube_api  # kopf's own API client", ["kopf._cogs.clients"]),
        ("import kopf._core.reactor.running", ["kopf._core.reactor.running"]),
        ("from kopf import _cogs, event", ["kopf._cogs"]),
        ("from kopf import (event, _core)", ["kopf._core"]),
        ("import kopf", []),
        ("from kopf import testing, ConnectionInfo", []),
        ("from kopf.testing import KopfRunner", []),
        ("from kopfish._x import y", []),
        ("import kopf.__main__", []),
    ],
)
def test_private_targets(line: str, expected: list[str]) -> None:
    assert private_targets(line, "kopf") == expected


def _lint(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    pkg = tmp_path / "sample"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "clean.py").write_text("import kopf\nfrom kopf.testing import KopfRunner\n")
    (pkg / "shell.py").write_text(body)
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = sample\ninclude_external_packages = True\n"
        "contract_types =\n    no_private_imports: titan.operator.private_imports.NoPrivateImportsContract\n\n"
        "[importlinter:contract:kopf]\nname = no kopf privates\ntype = no_private_imports\n"
        "external_packages =\n    kopf\n")
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    return subprocess.run([lint, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, "PYTHONPATH": str(tmp_path)})


def test_lint_imports_breaks_on_a_private_kopf_import(tmp_path: Path) -> None:
    proc = _lint(tmp_path, "import kopf\nfrom kopf._cogs.clients import api\n")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no kopf privates BROKEN" in proc.stdout
    assert "sample.shell -> kopf._cogs.clients (l.2)" in proc.stdout


def test_lint_imports_keeps_public_kopf_imports(tmp_path: Path) -> None:
    proc = _lint(tmp_path, "import kopf\n\ndef f():\n    return kopf.event\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no kopf privates KEPT" in proc.stdout


def test_operator_and_cli_import_nothing_private_from_kopf() -> None:
    offenders = [f"{path}:{n}" for folder in ("operator", "cli") for path in sorted((ROOT / folder).rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1) if private_targets(line, "kopf")]
    assert offenders == []
