"""Operator scenarios shared by the kmock tests and the real-API-server tests: the test side reads and
patches through the same official client (titan.operator.kube) the operator uses, so one body runs
against both servers."""

from __future__ import annotations

import time
from typing import Any

from nats.js import JetStreamContext

from tests.util import wait_for
from titan.core.bus import new_event_id, publish_event
from titan.core.catalog import Catalog
from titan.core.clock import WallClock
from titan.operator.deployments import RESTART_ANNOTATION, deployment_name
from titan.operator.kube import TITANPHASES, Kube
from titan.v1 import events_pb2, trading_pb2


async def publish_equity(js: JetStreamContext, catalog: Catalog, scope: str, equity: str,
                         exposure: str = "0") -> None:
    ts = WallClock().now_ns()
    event = events_pb2.Event(
        event_id=new_event_id("equity", scope, ts), source="execution", ts_ns=ts,
        equity=trading_pb2.EquitySnapshot(scope=scope, equity=equity, exposure=exposure, ts_ns=ts))
    await publish_event(js, catalog, event)


async def deployment(kube: Kube, namespace: str, phase: str) -> dict[str, Any] | None:
    return await kube.run(kube.get_deployment, namespace, deployment_name(phase))


async def replicas(kube: Kube, namespace: str, phase: str) -> int | None:
    dep = await deployment(kube, namespace, phase)
    return None if dep is None else int(dep["spec"]["replicas"])


async def events(kube: Kube, namespace: str, reason: str, about: str | None = None) -> list[dict[str, Any]]:
    def read() -> list[dict[str, Any]]:
        resp = kube.core.list_namespaced_event(namespace, _preload_content=False)
        items: list[dict[str, Any]] = Kube.decode(resp).get("items") or []
        return items

    return [e for e in await kube.run(read)
            if e.get("reason") == reason and (about is None or e["involvedObject"]["name"] == about)]


def _image(dep: dict[str, Any] | None) -> str:
    return str((dep or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("image"))


async def restart_waits_for_a_flat_book(kube: Kube, namespace: str, js: JetStreamContext, catalog: Catalog) -> None:
    """A Dormant phase holding positions keeps one pod; a new image is not rolled out while it holds
    positions (a RestartDeferred Warning), an explicit spec.restartToken rolls it out anyway, and a flat
    book scales it back to 0."""

    async def has_replicas(n: int) -> bool:
        return await replicas(kube, namespace, "sentinel") == n

    await publish_equity(js, catalog, "sentinel", "0", exposure="500")
    await wait_for(lambda: has_replicas(1), timeout=60)
    before = await deployment(kube, namespace, "sentinel")
    assert before is not None

    async def scaled_up() -> list[dict[str, Any]]:
        return [e for e in await events(kube, namespace, "Scaled", "sentinel") if "-> 1 replica" in e["message"]]

    scaled = await wait_for(scaled_up, timeout=30)
    assert scaled[0]["involvedObject"]["kind"] == "TitanPhase" and scaled[0]["type"] == "Normal"

    image = f"example.org/titan:deferred-{time.time_ns()}"
    await kube.run(kube.patch_object, TITANPHASES, namespace, "sentinel", {"spec": {"image": image}})
    deferred = await wait_for(lambda: events(kube, namespace, "RestartDeferred", "sentinel"), timeout=60)
    assert all(e["type"] == "Warning" and "restartToken" in e["message"] for e in deferred)
    still = await deployment(kube, namespace, "sentinel")
    assert still is not None and _image(still) == _image(before) != image
    assert still["spec"]["template"] == before["spec"]["template"]

    token = f"restart-{time.time_ns()}"
    await kube.run(kube.patch_object, TITANPHASES, namespace, "sentinel", {"spec": {"restartToken": token}})

    async def rolled_out() -> dict[str, Any] | None:
        dep = await deployment(kube, namespace, "sentinel")
        return dep if _image(dep) == image else None

    dep = await wait_for(rolled_out, timeout=60)
    assert dep["spec"]["template"]["metadata"]["annotations"][RESTART_ANNOTATION] == token
    assert dep["spec"]["replicas"] == 1

    await publish_equity(js, catalog, "sentinel", "0", exposure="0")  # flat again -> 0 replicas
    await wait_for(lambda: has_replicas(0), timeout=60)
