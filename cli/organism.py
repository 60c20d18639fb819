"""Organism control: what `titan status|halt|resume` do, whichever way the organism runs.

One small interface (:class:`OrganismControl`) with two backends: the local organism of `titan up`
(:mod:`titan.cli.organism_local`: the TitanBrain file, NATS KV, the ledger, execution's gRPC) and a
cluster (:mod:`titan.cli.organism_cluster`: the TitanBrain/TitanPhase resources through the official
Kubernetes client). The commands in :mod:`titan.cli.control_cmd` are written once against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

HALTED, ACTIVE = "Halted", "Active"


class ControlError(Exception):
    """A one-line message saying what is wrong and what to do."""


@dataclass(frozen=True)
class Note:
    text: str
    warning: bool = False


@dataclass(frozen=True)
class Switched:
    """The kill switch was set: on what, from which value, and whether a running organism acts on it."""

    target: str
    old: str
    live: bool


@dataclass(frozen=True)
class Where:
    """Which organism: a cluster when a kube context or a namespace is given, else the local one."""

    kube_context: str = ""
    namespace: str = ""

    @property
    def cluster(self) -> bool:
        return bool(self.kube_context or self.namespace)


class OrganismControl(Protocol):
    def switch(self, mode: str, reason: str) -> Switched:
        """Set the kill switch (the TitanBrain's spec.tradingState) to ``mode``."""
        ...

    def confirm_halt(self, reason: str, timeout_s: float) -> list[Note]:
        """Return once the halt is in force (or raise :class:`ControlError` after ``timeout_s``)."""
        ...

    def status(self) -> dict[str, Any]:
        """equity, trading_state, running, allocations, budgets, positions, ... (missing keys: unknown)."""
        ...

    def close(self) -> None: ...


def open_organism(where: Where) -> OrganismControl:
    if where.cluster:
        from titan.cli.organism_cluster import ClusterOrganism

        return ClusterOrganism.connect(where.kube_context, where.namespace)
    from titan.cli.organism_local import LocalOrganism

    return LocalOrganism()
