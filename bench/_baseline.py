"""Another revision of this repository, importable as ``titan``, for bench scripts that measure it side
by side with this checkout; and the pairwise comparison of their runs. Not a bench script itself (the
leading underscore keeps it out of tests/test_bench_scripts.py).

A revision is checked out in a temporary git worktree, and a directory holding a ``titan`` package
whose subpackages link to the worktree's folders (as pyproject.toml's ``package-dir`` maps them) goes
first on ``PYTHONPATH``: that process, and every process it starts, imports the revision's code,
while the bench script and its helpers stay this checkout's."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "titan.execution from"  # what a run prints (stderr) to show which code it imported


@contextlib.contextmanager
def checked_out(rev: str, repo: Path = ROOT) -> Iterator[tuple[str, Path]]:
    """``rev``'s short commit and a directory that makes it importable as ``titan``; the worktree is
    removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="titan-baseline-"))
    worktree = tmp / "worktree"
    try:
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "--quiet", str(worktree), rev],
                       check=True)
        commit = subprocess.run(["git", "-C", str(worktree), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        package_dirs = tomllib.loads((worktree / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
        importable = tmp / "importable"
        (importable / "titan").mkdir(parents=True)
        (importable / "titan" / "__init__.py").write_text("")
        for package, folder in package_dirs.items():
            if package.startswith("titan.") and package.count(".") == 1:
                (importable / "titan" / package.split(".", 1)[1]).symlink_to(worktree / folder)
        yield commit, importable
    finally:
        if worktree.exists():
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(worktree)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def environment(importable: Path | None, **extra: str) -> dict[str, str]:
    """This process's environment, with ``importable`` (if any) first on ``PYTHONPATH``."""
    env = {**os.environ, **extra}
    if importable is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(importable), env.get("PYTHONPATH")) if p)
    return env


def check_origin(stderr: str, importable: Path | None, script: str) -> None:
    """Stop unless a run of ``importable``'s code imported it (it printed :data:`ORIGIN` and a path
    inside it)."""
    if importable is None:
        return
    said = next((line for line in stderr.splitlines() if line.startswith(ORIGIN)), None)
    if said is not None and said[len(ORIGIN):].strip().startswith(str(importable)):
        return
    raise SystemExit(f"{script}: the baseline's titan was not the one imported (its run said: {said or 'nothing'})")


def pairwise(pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], keys: Sequence[str]) -> dict[str, Any]:
    """Per key, over (this checkout, baseline) run pairs: both medians, the median of the pairwise
    changes (this minus baseline) and in how many pairs this checkout's figure was lower. Keys a run
    did not measure (None) are left out."""
    out: dict[str, Any] = {}
    for key in keys:
        both = [(new[key], old[key]) for new, old in pairs
                if isinstance(new.get(key), int | float) and isinstance(old.get(key), int | float)]
        if not both:
            continue
        out[key] = {
            "this": round(statistics.median(new for new, _ in both), 3),
            "baseline": round(statistics.median(old for _, old in both), 3),
            "median_change": round(statistics.median(new - old for new, old in both), 3),
            "lower_in": f"{sum(new < old for new, old in both)} of {len(both)}",
        }
    return out
