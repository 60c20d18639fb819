"""A Titan organism in a Kubernetes cluster behind :class:`titan.cli.organism.OrganismControl`.

The kill switch is the TitanBrain's ``spec.tradingState`` (merge-patched; the reason goes into an
annotation); the Brain operator publishes the trading state and writes every TitanPhase's status,
so a halt is confirmed once the TitanBrain's status has seen the new generation and every TitanPhase
reports ``Halted``. Status is read from the TitanBrain and TitanPhase statuses. All through the
official client (:mod:`titan.operator.kube`), with the kubeconfig context the user names.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import urllib3

from titan.cli.organism import HALTED, ControlError, Note, Switched
from titan.operator.kube import TITANBRAINS, TITANPHASES, Kube, KubeTarget, context_namespace

REASON_ANNOTATION = "titan.trading/trading-state-reason"


class ClusterOrganism:
    def __init__(self, kube: Kube, namespace: str, context: str, poll_s: float = 1.0) -> None:
        self.kube = kube
        self.namespace = namespace
        self.context = context
        self.poll_s = poll_s
        self._generation = 0

    @classmethod
    def connect(cls, context: str, namespace: str) -> ClusterOrganism:
        target = KubeTarget(context=context)
        kube = Kube.connect(target)
        if not kube.api.configuration.verify_ssl:  # the kubeconfig asks for it: no warning per request
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        # A one-shot command says in one line why the server is unreachable; urllib3's per-retry
        # warnings would only repeat it.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        return cls(kube, namespace or context_namespace(target) or "default", context or "current context")

    @property
    def where(self) -> str:
        return f"namespace {self.namespace}, {self.context}"

    def _brain(self) -> dict[str, Any]:
        brains = sorted(self.kube.list_objects(TITANBRAINS, self.namespace), key=lambda b: b["metadata"]["name"])
        if not brains:
            raise ControlError(f"no TitanBrain in namespace {self.namespace} ({self.context}): is Titan installed "
                               "there? Name its namespace with --namespace")
        return brains[0]

    def _phases(self) -> list[dict[str, Any]]:
        return sorted(self.kube.list_objects(TITANPHASES, self.namespace), key=lambda p: p["metadata"]["name"])

    def switch(self, mode: str, reason: str) -> Switched:
        brain = self._brain()
        name = brain["metadata"]["name"]
        old = str((brain.get("spec") or {}).get("tradingState") or "Active")
        patched = self.kube.patch_object(TITANBRAINS, self.namespace, name, {
            "metadata": {"annotations": {REASON_ANNOTATION: reason}}, "spec": {"tradingState": mode}})
        if patched is None:
            raise ControlError(f"TitanBrain {self.namespace}/{name} vanished while it was patched; try again")
        self._generation = int(patched["metadata"].get("generation") or 0)
        return Switched(target=f"TitanBrain {self.namespace}/{name} ({self.context})", old=old, live=True)

    def _not_halted(self) -> list[str]:
        brain = self._brain()
        status = brain.get("status") or {}
        pending = []
        if int(status.get("observedGeneration") or 0) < self._generation or status.get("tradingMode") != "HALTED":
            pending.append(f"TitanBrain {brain['metadata']['name']} ({status.get('tradingMode') or 'no status'})")
        for phase in self._phases():
            state = (phase.get("status") or {}).get("state")
            if state != HALTED:
                pending.append(f"{phase['metadata']['name']} ({state or 'no status'})")
        return pending

    def confirm_halt(self, reason: str, timeout_s: float) -> list[Note]:
        deadline = time.monotonic() + timeout_s
        while True:
            pending = self._not_halted()
            if not pending:
                names = [p["metadata"]["name"] for p in self._phases()]
                return [Note(f"halted: the Brain and all {len(names)} TitanPhases ({', '.join(names)}) show Halted")]
            if time.monotonic() >= deadline:
                raise ControlError(
                    f"the kill switch is set, but after {timeout_s:g}s not everything shows the halt: "
                    f"{', '.join(pending)}; is the Brain operator running? (kubectl -n {self.namespace} get pods)")
            time.sleep(self.poll_s)

    def status(self) -> dict[str, Any]:
        brain = self._brain()
        st = brain.get("status") or {}
        allocations = {}
        for phase in self._phases():
            ps = phase.get("status") or {}
            alloc = ps.get("allocation") or {}
            allocations[phase["metadata"]["name"]] = {
                "state": ps.get("state") or "-", "weight": alloc.get("weight") or "-",
                "notional": alloc.get("notional") or "-", "leverage": alloc.get("maxLeverage") or "-"}
        return {
            "cluster": {"namespace": self.namespace, "context": self.context, "brain": brain["metadata"]["name"]},
            "kill_switch": (brain.get("spec") or {}).get("tradingState") or "Active",
            "equity": st.get("equity") or None,
            "trading_state": st.get("tradingMode") or None,
            "risk_state": st.get("riskState"),
            "breaker": (st.get("breaker") or {}).get("state"),
            "drawdown": st.get("drawdown"),
            "last_decision": st.get("lastDecisionTime"),
            "running": bool(st.get("lastDecisionTime")),
            "allocations": allocations,
        }

    def close(self) -> None:
        self.kube.close()
