"""Helpers for the deployment tests: the real helm/kubectl/promtool binaries (installed into
.tools/bin by .ci/install-tools.sh) and rendered manifests as Python objects."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "titan"
K3S_VALUES = CHART / "values-k3s.yaml"
MONITORING = ROOT / "monitoring"
RULES = MONITORING / "rules" / "titan-alerts.yaml"
DASHBOARDS = MONITORING / "dashboards"
K8S = ROOT / "k8s"
CRDS = ROOT / "crds"
RELEASE = "titan"
NAMESPACE = "titan"

Manifest = dict[str, Any]


def tool(name: str) -> str | None:
    """The project's pinned binary in .tools/bin, else one on PATH."""
    local = ROOT / ".tools" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def require(name: str) -> str:
    path = tool(name)
    if path is None:
        message = f"{name} is not installed: run .ci/install-tools.sh (puts it into .tools/bin)"
        if os.environ.get("CI"):  # CI installs every tool: a missing one is a broken setup, not a skip
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def load_all(text: str) -> list[Manifest]:
    return [d for d in yaml.safe_load_all(text) if d]


def helm_template_cmd(*extra: str, release: str = RELEASE, namespace: str = NAMESPACE) -> list[str]:
    return [require("helm"), "template", release, str(CHART), "--namespace", namespace, *extra]


@functools.lru_cache(maxsize=32)
def _render(extra: tuple[str, ...], release: str, namespace: str) -> tuple[Manifest, ...]:
    proc = run(*helm_template_cmd(*extra, release=release, namespace=namespace))
    return tuple(load_all(proc.stdout))


def render(*extra: str, release: str = RELEASE, namespace: str = NAMESPACE) -> list[Manifest]:
    """`helm template` with extra args (e.g. "-f", path, "--set", "a=b"), as a list of objects.
    Results are cached; callers must not mutate them."""
    return list(_render(tuple(extra), release, namespace))


def kinds(objs: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objs if o.get("kind") == kind]


def find(objs: Iterable[Manifest], kind: str, name: str) -> Manifest:
    for o in objs:
        if o.get("kind") == kind and o["metadata"]["name"] == name:
            return o
    raise AssertionError(f"no {kind}/{name} in the rendered manifests")


WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def pod_spec(obj: Manifest) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return obj["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def workloads(objs: Iterable[Manifest]) -> Iterator[Manifest]:
    return (o for o in objs if o.get("kind") in WORKLOAD_KINDS)


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from walk_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_strings(v)
