"""Peering: with `--peering titan-brain` only the highest-priority Brain replica acts. A live peer
of higher priority keeps this one paused; when that peer goes away, this one takes over."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from typing import Any

import kmock
import pytest
from kopf.testing import KopfRunner

from tests.operator.kube_helpers import BRAINS_URL, PHASES_URL, Emulator, declare_resources, kget, sample
from tests.util import wait_for
from titan.core.catalog import Catalog
from titan.operator.kopf_app import OperatorConfig, build_registry

pytestmark = pytest.mark.timeout(240)
PEERING_URL = "/apis/kopf.dev/v1/clusterkopfpeerings/titan-brain"


@pytest.fixture(scope="module")
async def emulator() -> AsyncIterator[kmock.KubernetesEmulator]:
    async with Emulator() as emu, kmock.Server(emu):
        declare_resources(emu, peering=True)
        yield emu


async def test_a_higher_priority_peer_keeps_this_replica_paused(
    emulator: kmock.KubernetesEmulator, nats_url: str, catalog: Catalog,
) -> None:
    now = datetime.datetime.now(datetime.UTC).isoformat()
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
               "metadata": {"name": "titan-brain", "resourceVersion": "1", "uid": "uid-peering"},
               "status": {"other-brain@node-a": {"priority": 100, "lifetime": 3600, "lastseen": now}}}
    for url, doc in (("/apis/kopf.dev/v1/clusterkopfpeerings", peering),
                     (BRAINS_URL, sample("titanbrain.yaml")), (PHASES_URL, sample("titanphase-hunter.yaml"))):
        resp = await emulator.post(url, json=doc)
        assert resp.status in (200, 201), await resp.text()

    config = OperatorConfig(nats_url=nats_url, catalog_namespace=catalog.namespace, interval_s=1.0,
                            kube_server=str(emulator.url).rstrip("/"))
    runner = KopfRunner(["run", "--all-namespaces", "--peering", "titan-brain", "--priority", "10"],
                        registry=build_registry(config), timeout=60)
    runner.__enter__()
    try:
        async def our_keepalive() -> dict[str, Any] | None:
            obj = await kget(emulator, PEERING_URL)
            status = (obj or {}).get("status") or {}
            ours = {k: v for k, v in status.items() if k != "other-brain@node-a" and v}
            return ours or None

        ours = await wait_for(our_keepalive, timeout=60)
        assert next(iter(ours.values()))["priority"] == 10
        # paused from the start (mandatory peering): nothing was reconciled
        hunter = await kget(emulator, f"{PHASES_URL}/hunter")
        assert hunter is not None and "state" not in (hunter.get("status") or {})

        # the other replica goes away -> this one takes over
        resp = await emulator.patch(PEERING_URL, json={"status": {"other-brain@node-a": None}},
                                    headers={"Content-Type": "application/merge-patch+json"})
        assert resp.status == 200, await resp.text()

        async def reconciled() -> bool:
            obj = await kget(emulator, f"{PHASES_URL}/hunter")
            return bool((obj or {}).get("status", {}).get("state"))

        await wait_for(reconciled, timeout=90)
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
