"""Helpers for the operator tests: kmock's Kubernetes emulator with the resources the Brain uses."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import kmock
import yaml

NS = "titan-test"
SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"
PHASES_URL = f"/apis/titan.trading/v1alpha1/namespaces/{NS}/titanphases"
BRAINS_URL = f"/apis/titan.trading/v1alpha1/namespaces/{NS}/titanbrains"
DEPLOY_URL = f"/apis/apps/v1/namespaces/{NS}/deployments"
VERBS = {"list", "watch", "get", "patch", "create", "delete", "update"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator plus `metadata.generateName` (kopf posts Kubernetes Events with it), and
    ``refuse_events``: how many posts of an Event with a given reason the server answers with a 500."""

    refuse_events: dict[str, int]

    async def _handle(self, request: kmock.Request) -> Any:
        data = request.data
        if isinstance(data, dict) and data.get("kind") == "Event":
            refusals = getattr(self, "refuse_events", {})
            reason = data.get("reason")
            if refusals.get(reason, 0) > 0:
                refusals[reason] -= 1
                return kmock.Response(status=500, reason="Internal Server Error",
                                      data={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "message": "injected by the test", "reason": "InternalError",
                                            "code": 500})
        if isinstance(data, dict):
            meta = data.get("metadata") or {}
            if meta.get("generateName") and not meta.get("name"):
                self._generated = getattr(self, "_generated", 0) + 1
                meta["name"] = f"{meta['generateName']}{self._generated:05d}"
        return await super()._handle(request)


def declare_resources(emu: kmock.KubernetesEmulator, *, peering: bool = False) -> None:
    res = emu.resources
    res["titan.trading/v1alpha1/titanphases"] = kmock.ResourceInfo(
        kind="TitanPhase", namespaced=True, verbs=VERBS, subresources={"status"}, shortnames={"tp"})
    res["titan.trading/v1alpha1/titanbrains"] = kmock.ResourceInfo(
        kind="TitanBrain", namespaced=True, verbs=VERBS, subresources={"status"}, shortnames={"tb"})
    res["apps/v1/deployments"] = kmock.ResourceInfo(kind="Deployment", namespaced=True, verbs=VERBS)
    res["v1/events"] = kmock.ResourceInfo(kind="Event", namespaced=True, verbs=VERBS)
    # kopf's observers need these two for discovery, or no handler ever runs.
    res["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs=VERBS)
    res["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False, verbs=VERBS)
    if peering:
        res["kopf.dev/v1/clusterkopfpeerings"] = kmock.ResourceInfo(
            kind="ClusterKopfPeering", namespaced=False, verbs=VERBS)
        res["kopf.dev/v1/kopfpeerings"] = kmock.ResourceInfo(kind="KopfPeering", namespaced=True, verbs=VERBS)


def sample(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SAMPLES / name).read_text())
    # kmock assigns neither uid nor resourceVersion; kopf needs both (constant RV: see the notes).
    doc["metadata"].update(namespace=NS, uid=f"uid-{doc['metadata']['name']}", resourceVersion="1")
    return doc


async def kget(emu: kmock.KubernetesEmulator, url: str) -> dict[str, Any] | None:
    resp = await emu.get(url)
    if resp.status == 404:
        return None
    assert resp.status == 200, (url, resp.status, await resp.text())
    data: dict[str, Any] = await resp.json()
    return data
