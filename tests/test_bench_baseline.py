"""bench/_baseline.py: another revision made importable as ``titan`` (a worktree, removed afterwards),
the check that a run imported it, and the pairwise comparison of runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from _baseline import ORIGIN, check_origin, checked_out, environment, pairwise

ROOT = Path(__file__).resolve().parents[1]


def test_a_revision_is_imported_from_its_worktree_and_the_worktree_goes_afterwards() -> None:
    with checked_out("HEAD") as (commit, importable):
        said = subprocess.run(
            [sys.executable, "-c", f"import titan.execution, pathlib; print({ORIGIN!r}, "
                                   "pathlib.Path(titan.execution.__file__).parent)"],
            capture_output=True, text=True, env=environment(importable), check=True, cwd="/").stdout
        check_origin(said, importable, "test")  # passes: the worktree's code was imported
        with pytest.raises(SystemExit, match="was not the one imported"):
            check_origin(f"{ORIGIN} {ROOT / 'execution'}\n", importable, "test")  # this checkout's: refused
        with pytest.raises(SystemExit, match="nothing"):
            check_origin("", importable, "test")
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        assert commit == head and (importable / "titan" / "execution" / "engine").is_dir()
    assert not importable.exists()
    listed = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True,
                            check=True).stdout
    assert str(importable.parent) not in listed


def test_pairs_are_compared_key_by_key() -> None:
    pairs = [({"a": 10, "b": 1.0, "c": None}, {"a": 12, "b": 0.5, "c": 3}),
             ({"a": 11, "b": 2.0, "c": None}, {"a": 10, "b": 1.5, "c": 4}),
             ({"a": 9, "b": 3.0, "c": None}, {"a": 12, "b": 2.5, "c": 5})]
    compared = pairwise(pairs, ("a", "b", "c", "missing"))
    assert compared["a"] == {"this": 10, "baseline": 12, "median_change": -2, "lower_in": "2 of 3"}
    assert compared["b"] == {"this": 2.0, "baseline": 1.5, "median_change": 0.5, "lower_in": "0 of 3"}
    assert "c" not in compared and "missing" not in compared  # not measured in this checkout's runs


def test_each_run_of_a_comparison_is_one_plain_run_whatever_was_abbreviated(monkeypatch: pytest.MonkeyPatch) -> None:
    import execution_latency

    for argv in (["--baseline", "HEAD", "--pairs", "2"], ["--base", "HEAD", "--repea", "3"], ["--baseline=HEAD"]):
        monkeypatch.setattr(sys, "argv", ["execution_latency.py", *execution_latency.child_argv(argv)])
        run = execution_latency.parse_args()
        assert (run.baseline, run.repeats) == ("", 1)  # the child measures; it does not compare again
