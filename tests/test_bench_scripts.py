"""Every script in bench/ runs in its quick mode and prints the JSON it promises, so no benchmark can
silently rot. The contract of a bench script:

* ``python bench/<name>.py --quick`` runs every part of it on small workloads (seconds to a minute)
  and exits 0;
* it prints exactly one JSON object on stdout (progress goes to stderr);
* it declares the top-level keys of that object in a module-level tuple ``JSON_KEYS``, and the object
  has every one of them;
* a script that needs a program besides Python names it in a module-level tuple ``REQUIRES_TOOLS``;
  where one is missing the test skips and says which.

Real NATS and PostgreSQL are handed over as ``TITAN_NATS_URL`` / ``TITAN_PG_DSN``. No thresholds:
the figures are for people, not for tests.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))
# What the execution hot path issue asks of bench/execution_latency.py, whatever the script declares.
EXECUTION_KEYS = {
    "rtt_p50_us", "rtt_p99_us", "rtt_p999_us", "echo_rtt_p50_us", "echo_rtt_p99_us", "accepted_per_s", "lost",
    "duplicated", "engine_us_per_signal", "service_cpu_us_per_signal", "recovery_s_100k_fills",
    "ledger_events_per_s", "load_average", "nats_server_version",
}


def declared(script: Path, name: str) -> tuple[str, ...] | None:
    """A module-level tuple of strings read from the script's source (the script is not imported)."""
    for node in ast.parse(script.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, tuple) and value and all(isinstance(k, str) for k in value), script.name
            return value
    return None


def declared_keys(script: Path) -> tuple[str, ...]:
    keys = declared(script, "JSON_KEYS")
    assert keys is not None, f"{script.name} declares no JSON_KEYS tuple"
    return keys


def test_there_are_bench_scripts() -> None:
    assert {"execution_latency.py", "ledger_writer.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_bench_script_quick_mode_prints_its_keys(script: Path, nats_url: str, pg_server_dsn: str) -> None:
    keys = declared_keys(script)
    assert "--quick" in script.read_text(), f"{script.name} has no --quick mode"
    missing_tools = [tool for tool in declared(script, "REQUIRES_TOOLS") or () if shutil.which(tool) is None]
    if missing_tools:
        pytest.skip(f"{script.name} needs {', '.join(missing_tools)}, which is not installed")
    env = {**os.environ, "TITAN_NATS_URL": nats_url, "TITAN_PG_DSN": pg_server_dsn}
    proc = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=900,
                          env=env, cwd=BENCH.parent, check=False)
    assert proc.returncode == 0, f"{script.name} --quick exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{script.name} did not print one JSON object: {exc}\n{proc.stdout[-2000:]}") from None
    assert isinstance(result, dict), script.name
    missing = set(keys) - set(result)
    assert not missing, f"{script.name} --quick lacks {sorted(missing)}"
    if script.name == "execution_latency.py":
        assert set(result) >= EXECUTION_KEYS, sorted(EXECUTION_KEYS - set(result))
        assert set(EXECUTION_KEYS) <= set(keys)
