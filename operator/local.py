"""The local Brain driver: the same core and NATS shell, driven from TitanBrain/TitanPhase YAML files.

``titan up`` runs it instead of the kopf operator. The files (e.g. crds/samples/) are re-read when
they change, so editing ``spec.tradingState: Halted`` in the TitanBrain file is the local kill
switch. Each pass writes what a cluster would show in ``status`` to ``<state_dir>/brain-status.json``
and keeps the core state (breakers, day start, high-water mark) in ``<state_dir>/brain-core.json``,
so a HARD breaker survives a restart just as it does in TitanBrain.status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from nats.aio.client import Client

from titan.core import metrics
from titan.core.catalog import Catalog
from titan.core.clock import Clock
from titan.operator.brain import BrainPolicy, Decision, PhaseSpec, PolicyError, parse_brain_spec, parse_phase_spec
from titan.operator.runtime import BrainRuntime, status_for_brain, status_for_phase

log = logging.getLogger("titan.brain.local")


class ManifestError(ValueError):
    """The YAML files do not describe one organism (no or several TitanBrains, bad YAML)."""


@dataclass
class Manifests:
    brain_name: str
    brain_spec: dict[str, Any]
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> spec


def _yaml_files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            out.append(path)
    return out


def load_manifests(paths: Iterable[Path]) -> Manifests:
    brains: list[tuple[str, dict[str, Any]]] = []
    phases: dict[str, dict[str, Any]] = {}
    for file in _yaml_files(paths):
        try:
            docs = [d for d in yaml.safe_load_all(file.read_text()) if d]
        except (OSError, yaml.YAMLError) as exc:
            raise ManifestError(f"{file}: {exc}") from None
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("apiVersion") != "titan.trading/v1alpha1":
                continue
            name = str((doc.get("metadata") or {}).get("name") or "")
            if not name:
                raise ManifestError(f"{file}: a {doc.get('kind')} without metadata.name")
            spec = dict(doc.get("spec") or {})
            if doc.get("kind") == "TitanBrain":
                brains.append((name, spec))
            elif doc.get("kind") == "TitanPhase":
                if name in phases:
                    raise ManifestError(f"{file}: TitanPhase {name!r} defined twice")
                phases[name] = spec
    if len(brains) != 1:
        raise ManifestError(f"expected exactly one TitanBrain, found {len(brains)}")
    return Manifests(brain_name=brains[0][0], brain_spec=brains[0][1], phases=phases)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


class LocalBrain:
    def __init__(
        self,
        nc: Client,
        catalog: Catalog,
        paths: Sequence[Path],
        clock: Clock,
        *,
        state_dir: Path | None = None,
        interval_s: float = 5.0,
    ) -> None:
        self.runtime = BrainRuntime(nc, catalog, clock)
        self.paths = list(paths)
        self.state_dir = state_dir
        self.interval_s = interval_s
        self.policy = BrainPolicy()
        self.phases: list[PhaseSpec] = []
        self.brain_name = ""
        self.problems: list[str] = []
        self._stamp: tuple[tuple[str, float], ...] = ()

    @property
    def core_path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / "brain-core.json"

    @property
    def status_path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / "brain-status.json"

    async def start(self) -> None:
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.core_path is not None and self.core_path.exists():
            try:
                self.runtime.restore(json.loads(self.core_path.read_text()))
            except (OSError, ValueError) as exc:
                log.warning("ignoring unreadable %s: %s", self.core_path, exc)
        with contextlib.suppress(ManifestError, PolicyError):  # events replayed at start count under it
            self.runtime.policy = parse_brain_spec(load_manifests(self.paths).brain_spec)
        await self.runtime.start()

    async def close(self) -> None:
        await self.runtime.close()

    def _files_stamp(self) -> tuple[tuple[str, float], ...]:
        stamp = []
        for file in _yaml_files(self.paths):
            with contextlib.suppress(OSError):
                stamp.append((str(file), file.stat().st_mtime))
        return tuple(stamp)

    async def reload(self, *, force: bool = False) -> bool:
        """Re-read the YAML files if they changed; keeps the last good policy on errors."""
        stamp = self._files_stamp()
        if stamp == self._stamp and not force:
            return False
        self._stamp = stamp
        problems: list[str] = []
        try:
            manifests = load_manifests(self.paths)
        except ManifestError as exc:
            self.problems = [str(exc)]
            log.error("manifests: %s (keeping the previous ones)", exc)
            return False
        try:
            self.policy = parse_brain_spec(manifests.brain_spec)
            self.brain_name = manifests.brain_name
        except PolicyError as exc:
            problems.append(f"TitanBrain {manifests.brain_name}: {exc}")
        phases: list[PhaseSpec] = []
        for name, spec in sorted(manifests.phases.items()):
            try:
                phases.append(parse_phase_spec(name, spec))
            except PolicyError as exc:
                problems.append(f"TitanPhase {name}: {exc} (no budget: it may only reduce)")
        self.phases = phases
        for phase in phases:
            await self.runtime.put_params(phase.phase_id, dict(phase.params))
        self.problems = problems
        for problem in problems:
            log.error("%s", problem)
        return True

    async def step(self) -> Decision:
        """One pass: reload changed files, decide, publish, write status and core state."""
        await self.reload()
        async with self.runtime.lock:
            decision = self.runtime.decide(self.policy, self.phases)
            try:
                await self.runtime.apply(decision)
            except Exception:
                metrics.BRAIN_RECONCILES.labels(result="error").inc()
                raise
        metrics.BRAIN_RECONCILES.labels(result="ok").inc()
        for phase_id, old, new in decision.state_changes:
            log.info("phase %s: %s -> %s (%s)", phase_id, old or "new", new, decision.phases[phase_id].reason)
        for change in decision.breaker_changes:
            log.warning("%s breaker %s: %s", change.kind.value, "tripped" if change.tripped else "reset",
                        change.reason)
        core = self.runtime.core.to_dict()
        if self.core_path is not None:
            _write_json(self.core_path, core)
        if self.status_path is not None:
            _write_json(self.status_path, {
                "brain": {"name": self.brain_name, "status": status_for_brain(decision, core),
                          "problems": self.problems},
                "phases": {p: {"status": status_for_phase(decision, p, None)} for p in decision.phases},
            })
        return decision

    async def run(self, stop: asyncio.Event) -> None:
        """Decide every ``interval_s`` until ``stop`` is set (errors are logged, never fatal)."""
        while not stop.is_set():
            try:
                await self.step()
            except Exception as exc:  # NATS down etc.: execution's budgets expire -> conservative
                log.warning("brain pass failed: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
