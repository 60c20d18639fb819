"""The Brain as a kopf operator: reconciles TitanPhase and TitanBrain.

A thin shell around :class:`titan.operator.runtime.BrainRuntime` (which wraps the pure core):

* indexes keep a small copy of every TitanPhase / TitanBrain spec (no other caches: low memory);
* create/update/resume handlers and the operator's own re-decide loop (:func:`keep_deciding`) all
  call :func:`reconcile` (a deleted TitanPhase drops out of the index: the next pass deletes its
  budget), which decides, publishes budgets and the trading state to NATS KV, writes ``status`` on the TitanBrain
  and every TitanPhase, scales each phase's Deployment (an adopted child) and posts Kubernetes
  Events on state changes;
* a phase's ``spec.params`` go to the TITAN_PARAMS KV bucket (phases reload them in place).

No handler needs to run when a Titan object is deleted, so kopf puts no finalizer on them: deleting
a TitanBrain or TitanPhase never waits for the operator (``helm uninstall`` deletes the operator,
its RBAC and the objects in one pass). That is why the periodic re-decision is an asyncio task of
the operator's own and not a ``kopf.timer`` (kopf blocks the deletion of every object a timer or
daemon serves with its finalizer until the timer stops, which needs a running operator).

kopf watches and keeps its own bookkeeping; every call the operator makes itself (statuses,
Deployments, Events) goes through the official ``kubernetes`` client (:mod:`titan.operator.kube`) in a
worker thread, configured from the same source kopf logs in with. One organism per operator: run it
namespaced (``--namespace``), or it serves the first namespace with a TitanBrain.
Run with ``titan operator run`` or ``kopf run -m titan.operator.kopf_app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from titan.core import metrics
from titan.core.bus import connect
from titan.core.catalog import Catalog
from titan.core.clock import NS_PER_S, Clock, WallClock
from titan.core.service import tasks_on_request
from titan.operator import deployments
from titan.operator.brain import BrainPolicy, PhaseSpec, PolicyError, parse_brain_spec, parse_phase_spec
from titan.operator.kube import (
    TITANBRAINS,
    TITANPHASES,
    Kube,
    KubeError,
    KubeTarget,
    ObjectRef,
    Resource,
    accept_unverified,
    connection_info,
    load_configuration,
)
from titan.operator.runtime import BrainRuntime, status_for_brain, status_for_phase

GROUP, VERSION = "titan.trading", "v1alpha1"
PREFIX = "brain.titan.trading"
STATUS_HEARTBEAT_S = 60


@dataclass(frozen=True)
class OperatorConfig:
    nats_url: str = "nats://127.0.0.1:4222"
    catalog_namespace: str = ""
    interval_s: float = 10.0              # re-decide and re-issue budgets (< budget TTL)
    kube_server: str = ""                 # explicit API server (local emulators); else in-cluster/kubeconfig
    kube_context: str = ""                # kubeconfig context ("" = the current one)
    default_image: str = deployments.DEFAULT_IMAGE
    metrics_port: int = 0                 # 0 = no /metrics server (e.g. tests)
    pod: deployments.PodSettings = field(default_factory=deployments.PodSettings)
    clock: Clock = field(default_factory=WallClock)  # the Brain's time (tests: a fake loop clock)

    @classmethod
    def from_env(cls) -> OperatorConfig:
        env = os.environ
        return cls(
            nats_url=env.get("TITAN_NATS_URL") or cls.nats_url,
            catalog_namespace=env.get("TITAN_NAMESPACE", ""),
            interval_s=float(env.get("TITAN_BRAIN_INTERVAL_S", "10")),
            kube_server=env.get("TITAN_KUBE_SERVER", ""),
            kube_context=env.get("TITAN_KUBE_CONTEXT", ""),
            default_image=env.get("TITAN_PHASE_IMAGE", deployments.DEFAULT_IMAGE),
            metrics_port=int(env.get("TITAN_BRAIN_METRICS_PORT", "0")),
            pod=deployments.PodSettings(
                service_account=env.get("TITAN_PHASE_SERVICE_ACCOUNT", ""),
                settings_configmap=env.get("TITAN_PHASE_SETTINGS_CONFIGMAP", ""),
                hmac_secret=env.get("TITAN_PHASE_HMAC_SECRET_NAME", ""),
                gemini_secret=env.get("TITAN_PHASE_GEMINI_SECRET_NAME", ""),
                gemini_secret_item=env.get("TITAN_PHASE_GEMINI_SECRET_ITEM", "api-key"),
                env={k: v for k, v in (("TITAN_NATS_URL", env.get("TITAN_PHASE_NATS_URL", "")),
                                       ("TITAN_NAMESPACE", env.get("TITAN_NAMESPACE", ""))) if v},
            ),
        )


@dataclass
class Shell:
    """Per-operator state kept in kopf's memo."""

    config: OperatorConfig
    runtime: BrainRuntime
    kube: Kube
    namespace: str | None = None                                # the organism's Kubernetes namespace
    restored: bool = False
    deciding: asyncio.Task[None] | None = None                  # keep_deciding, cancelled at cleanup
    deferred: set[str] = field(default_factory=set)             # phases with a postponed pod restart
    written: dict[str, tuple[str, int]] = field(default_factory=dict)  # object -> (status key, when)

    def status_due(self, key: str, status: dict[str, Any], now_ns: int) -> bool:
        """Write a status only when it changed (ignoring timestamps and budget versions) or once a
        minute: every write is a watch event for every watcher, so unchanged statuses are not re-sent
        each pass. (Budget versions stay monotone without it: they are at least the time in ms.)"""
        volatile = ("lastDecisionTime", "budgetVersion")
        content = json.dumps({k: ({c: x for c, x in v.items() if c not in volatile} if k == "core" else v)
                              for k, v in status.items() if k not in volatile}, sort_keys=True)
        last = self.written.get(key)
        if last is not None and last[0] == content and now_ns - last[1] < STATUS_HEARTBEAT_S * NS_PER_S:
            return False
        self.written[key] = (content, now_ns)
        return True


    async def event(self, about: ObjectRef, event_type: str, reason: str, message: str, logger: logging.Logger) -> bool:
        """Post a Kubernetes Event; a failure is logged, never fatal (Events are informational).
        True when the server accepted it."""
        now = datetime.datetime.fromtimestamp(self.config.clock.now_ns() / NS_PER_S, datetime.UTC)
        try:
            await self.kube.run(self.kube.post_event, about, event_type=event_type, reason=reason, message=message,
                                now=now)
        except KubeError as exc:
            logger.warning("event %s on %s/%s not posted: %s", reason, about.kind, about.name, exc)
            return False
        return True


def _owner(kind: str, item: Mapping[str, Any], namespace: str) -> kopf.Body:
    """A minimal body of one of our objects: enough for owner references."""
    return kopf.Body({"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
                      "metadata": {"name": item["name"], "namespace": namespace, "uid": item["uid"]}})


def _ref(kind: str, item: Mapping[str, Any], namespace: str) -> ObjectRef:
    """What an Event about one of our objects points at."""
    return ObjectRef(f"{GROUP}/{VERSION}", kind, item["name"], namespace, item["uid"])


async def _reconcile_from(kw: Mapping[str, Any]) -> None:
    """Handler kwargs -> :func:`reconcile` (the indexes arrive as kwargs named after their ids)."""
    await reconcile(kw["namespace"], kw["memo"]["shell"], kw["titan_phases"], kw["titan_brains"], kw["logger"])


def build_registry(config: OperatorConfig | None = None,
                   registry: kopf.OperatorRegistry | None = None) -> kopf.OperatorRegistry:
    """Register the Brain's handlers (on a fresh registry unless one is given)."""
    cfg = config or OperatorConfig.from_env()
    reg = registry if registry is not None else kopf.OperatorRegistry()
    register_lifecycle(reg, cfg)
    register_resources(reg)
    return reg


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for the Brain: state in annotations, its own posts only from warnings up."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX)
    settings.posting.level = logging.WARNING   # kopf's own posts; the Brain's Events: Shell.event
    settings.watching.server_timeout = 300
    settings.batching.worker_limit = 8
    # Serve the namespaces named at start and the CRDs that exist then (discovery only): no
    # namespace list/watch, which the chart's namespaced Role does not grant (kopf would retry it
    # for about a minute before it starts).
    settings.scanning.disabled = True


async def close_shell(shell: Shell) -> None:
    """Stop deciding, then close the runtime, NATS and the API client."""
    if shell.deciding is not None:
        shell.deciding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await shell.deciding
    await shell.runtime.close()
    await shell.runtime.nc.close()
    shell.kube.close()


def register_lifecycle(reg: kopf.OperatorRegistry, cfg: OperatorConfig) -> None:
    """The operator's login, start (NATS, the runtime, the deciding loop, metrics), clean-up and
    liveness probe."""
    target = KubeTarget(server=cfg.kube_server, context=cfg.kube_context)

    @kopf.on.login(registry=reg)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # One source for kopf and for the operator's own client (see titan.operator.kube).
        try:
            info: kopf.ConnectionInfo = connection_info(load_configuration(target),
                                                        default_namespace="default" if target.server else None)
            return info
        except KubeError as exc:
            raise kopf.LoginError(str(exc)) from None

    @kopf.on.startup(registry=reg)
    async def startup(**kwargs: Any) -> None:
        memo: kopf.Memo = kwargs["memo"]
        logger: logging.Logger = kwargs["logger"]
        configure_kopf(kwargs["settings"])
        tasks_on_request(asyncio.get_running_loop())  # kill -USR1: threads' stacks, then kopf's tasks too
        nc = await connect(cfg.nats_url, "titan-brain")
        runtime = BrainRuntime(nc, Catalog(cfg.catalog_namespace), cfg.clock)
        await runtime.open()  # it follows the stream at the first reconcile, with the TitanBrain's window
        shell = Shell(config=cfg, runtime=runtime, kube=Kube.connect(target))
        accept_unverified(shell.kube.api.configuration)  # one log line instead of a warning per request
        # the indexes arrive (empty, then kept current by kopf) in every handler, startup included
        shell.deciding = asyncio.create_task(keep_deciding(shell, kwargs["titan_phases"], kwargs["titan_brains"],
                                                           logger))
        memo["shell"] = shell
        if cfg.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(cfg.metrics_port)
        logger.info("brain started: NATS %s, catalog %r", cfg.nats_url, cfg.catalog_namespace)

    @kopf.on.cleanup(registry=reg)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        shell: Shell | None = memo.get("shell")
        if shell is not None:
            await close_shell(shell)

    @kopf.on.probe(id="lastDecisionAgeSeconds", registry=reg)
    def probe(memo: kopf.Memo, **_: Any) -> float | None:
        shell: Shell | None = memo.get("shell")
        if shell is None or shell.runtime.last_decision is None:
            return None
        return (shell.config.clock.now_ns() - shell.runtime.last_decision.ts_ns) / NS_PER_S


def register_resources(reg: kopf.OperatorRegistry) -> None:
    """The indexes of TitanPhases and TitanBrains, and a reconcile on each change of either's spec
    (a phase's params published to the parameters bucket first). The handlers' ids are given, not
    taken from where the functions are defined: kopf keys its progress annotations by them."""

    @kopf.index(GROUP, VERSION, "titanphases", id="titan_phases", registry=reg)
    def titan_phases(**kw: Any) -> dict[str, Any]:
        return {kw["namespace"]: {"name": kw["name"], "uid": kw["uid"], "spec": copy.deepcopy(dict(kw["spec"])),
                                  "generation": kw["meta"].get("generation")}}

    @kopf.index(GROUP, VERSION, "titanbrains", id="titan_brains", registry=reg)
    def titan_brains(**kw: Any) -> dict[str, Any]:
        return {kw["namespace"]: {"name": kw["name"], "uid": kw["uid"], "spec": copy.deepcopy(dict(kw["spec"])),
                                  "core": copy.deepcopy(dict(kw["status"].get("core") or {})),
                                  "generation": kw["meta"].get("generation")}}

    @kopf.on.resume(GROUP, VERSION, "titanphases", id="phase_changed", registry=reg)
    @kopf.on.create(GROUP, VERSION, "titanphases", id="phase_changed", registry=reg)
    @kopf.on.update(GROUP, VERSION, "titanphases", field="spec", id="phase_changed", registry=reg)
    async def phase_changed(**kw: Any) -> None:
        shell: Shell = kw["memo"]["shell"]
        params = copy.deepcopy(dict(kw["spec"].get("params") or {}))
        if await shell.runtime.put_params(kw["name"], params):
            await shell.event(_ref("TitanPhase", kw, kw["namespace"]), "Normal", "ParamsPublished",
                              f"spec.params published to the parameters bucket ({len(params)} keys)", kw["logger"])
        await _reconcile_from(kw)

    @kopf.on.resume(GROUP, VERSION, "titanbrains", id="brain_changed", registry=reg)
    @kopf.on.create(GROUP, VERSION, "titanbrains", id="brain_changed", registry=reg)
    @kopf.on.update(GROUP, VERSION, "titanbrains", field="spec", id="brain_changed", registry=reg)
    async def brain_changed(**kw: Any) -> None:
        await _reconcile_from(kw)


async def keep_deciding(shell: Shell, titan_phases: kopf.Index[str, Any], titan_brains: kopf.Index[str, Any],
                        logger: logging.Logger) -> None:
    """Re-decide ``interval_s`` after the last decision or pass, whichever ended later (budgets are
    re-issued before they expire), for the namespace a handler reconciled first: nothing before that
    (e.g. while peering keeps this replica paused from the start), and nothing while that namespace
    has no TitanBrain. A failed pass is logged and retried an interval later. A replica that peering
    pauses after it was active keeps re-deciding: kopf gives its handlers no sign of a pause."""
    clock, interval_ns = shell.config.clock, round(shell.config.interval_s * NS_PER_S)
    last_pass_ns = clock.now_ns()
    while True:
        last = shell.runtime.last_decision
        due_ns = max(last_pass_ns, last.ts_ns if last is not None else 0) + interval_ns
        wait_ns = due_ns - clock.now_ns()
        if wait_ns > 0:
            await asyncio.sleep(wait_ns / NS_PER_S)
            continue  # a handler may have decided meanwhile: measure again from that decision
        if shell.namespace is not None and titan_brains.get(shell.namespace):  # else: budgets expire
            try:
                await reconcile(shell.namespace, shell, titan_phases, titan_brains, logger)
            except Exception as exc:  # the pass's error is counted (titan_brain_reconciles_total)
                logger.warning("periodic decision in %s failed (%s: %s); retrying in %.0f s", shell.namespace,
                               type(exc).__name__, exc, shell.config.interval_s)
        last_pass_ns = clock.now_ns()


def _items(index: kopf.Index[str, Any], namespace: str) -> list[dict[str, Any]]:
    store: Iterable[dict[str, Any]] = index.get(namespace, [])
    return sorted(store, key=lambda item: item["name"])


async def reconcile(
    namespace: str,
    shell: Shell,
    titan_phases: kopf.Index[str, Any],
    titan_brains: kopf.Index[str, Any],
    logger: logging.Logger,
) -> None:
    """Decide and apply everything for the organism in ``namespace``. Idempotent."""
    brains = _items(titan_brains, namespace)
    if not brains:
        logger.info("no TitanBrain in %s yet: nothing decided (phases without budgets may only reduce)",
                    namespace)
        return
    if shell.namespace is None:
        shell.namespace = namespace
    elif shell.namespace != namespace:
        logger.warning("ignoring the TitanBrain in %s: this operator serves %s", namespace, shell.namespace)
        return
    brain = brains[0]
    brain_ref = _ref("TitanBrain", brain, namespace)
    rt = shell.runtime
    if rt.nc.is_closed:  # shutting down
        return
    # One reconcile at a time: handlers for several objects and keep_deciding may run together.
    async with rt.lock:
        try:
            await _reconcile_locked(namespace, shell, brain, brain_ref, titan_phases, logger)
        except Exception:
            metrics.BRAIN_RECONCILES.labels(result="error").inc()
            raise


async def _reconcile_locked(namespace: str, shell: Shell, brain: dict[str, Any], brain_ref: ObjectRef,
                            titan_phases: kopf.Index[str, Any], logger: logging.Logger) -> None:
    rt = shell.runtime
    try:
        policy: BrainPolicy | None = parse_brain_spec(brain["spec"])
    except PolicyError as exc:
        policy = None
        metrics.BRAIN_RECONCILES.labels(result="invalid").inc()
        await shell.event(brain_ref, "Warning", "InvalidSpec", str(exc), logger)
    if not shell.restored:
        rt.policy = policy or rt.policy  # the replay's performance window
        await rt.follow()
        rt.restore(brain["core"])
        shell.restored = True
    if policy is None:
        return
    items: dict[str, dict[str, Any]] = {}
    phases: list[PhaseSpec] = []
    for item in _items(titan_phases, namespace):
        try:
            phases.append(parse_phase_spec(item["name"], item["spec"]))
            items[item["name"]] = item
        except PolicyError as exc:
            await shell.event(_ref("TitanPhase", item, namespace), "Warning", "InvalidSpec",
                              f"{exc}; the phase gets no budget (it may only reduce)", logger)
    decision = rt.decide(policy, phases)
    await rt.apply(decision)

    # Kubernetes side: events, statuses, deployments.
    for change in decision.breaker_changes:
        await shell.event(brain_ref, "Warning" if change.tripped else "Normal",
                          f"{change.kind.value.capitalize()}Breaker{'Tripped' if change.tripped else 'Reset'}",
                          change.reason, logger)
    for phase_id, old, new in decision.state_changes:
        if phase_id in items:
            await shell.event(_ref("TitanPhase", items[phase_id], namespace),
                              "Warning" if new == "Halted" else "Normal", "StateChanged",
                              f"{old or 'new'} -> {new}: {decision.phases[phase_id].reason}"[:1000], logger)
    now = decision.ts_ns
    brain_status = {**status_for_brain(decision, rt.core.to_dict()), "observedGeneration": brain["generation"]}
    if shell.status_due(f"TitanBrain/{brain['name']}", brain_status, now):
        await _patch(shell.kube, logger, TITANBRAINS, namespace, brain["name"], {"status": brain_status})
    for phase_id, item in items.items():
        phase_status = status_for_phase(decision, phase_id, item["generation"])
        if shell.status_due(f"TitanPhase/{phase_id}", phase_status, now):
            await _patch(shell.kube, logger, TITANPHASES, namespace, phase_id, {"status": phase_status})
        await _ensure_deployment(shell, logger, namespace, item, decision.phases[phase_id].replicas)
    metrics.BRAIN_RECONCILES.labels(result="ok").inc()


def merge_patch_value(value: Any, *, in_list: bool = False) -> Any:
    """Empty strings become ``null`` in a merge patch (= remove the field) instead of ``""``; inside
    list items they are dropped. A status never carries "" then, and a field that became empty is
    removed rather than left at its old value. (Some API server builds also decode "" as null and
    then reject it against a ``type: string`` schema.)"""
    if isinstance(value, dict):
        if in_list:
            return {k: merge_patch_value(v) for k, v in value.items() if v != ""}
        return {k: (None if v == "" else merge_patch_value(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [merge_patch_value(v, in_list=True) for v in value]
    return value


async def _patch(kube: Kube, logger: logging.Logger, resource: Resource, namespace: str, name: str,
                 patch: dict[str, Any]) -> None:
    if await kube.run(kube.patch_object, resource, namespace, name, merge_patch_value(patch)) is None:
        logger.debug("%s/%s vanished before its status was written", namespace, name)


async def _ensure_deployment(shell: Shell, logger: logging.Logger, namespace: str, item: dict[str, Any],
                             replicas: int) -> None:
    """Create or scale the phase's Deployment (an adopted child of the TitanPhase)."""
    name, kube = item["name"], shell.kube
    desired_replicas = min(replicas, int(item["spec"].get("replicas", 1)))
    desired = deployments.render_deployment(name, namespace, item["spec"], desired_replicas,
                                            default_image=shell.config.default_image, pod=shell.config.pod)
    kopf.adopt(desired, owner=_owner("TitanPhase", item, namespace))
    child = desired["metadata"]["name"]
    phase_ref = _ref("TitanPhase", item, namespace)
    existing = await kube.run(kube.get_deployment, namespace, child)
    if existing is None:
        if not await kube.run(kube.create_deployment, namespace, desired):
            logger.debug("%s exists already; it is reconciled on the next pass", child)
            return
        await shell.event(phase_ref, "Normal", "DeploymentCreated", f"{child} with {desired_replicas} replica(s)",
                          logger)
        return
    book = shell.runtime.core.books.get(name)
    holds = book is not None and book.exposure != 0
    patch, deferred = deployments.plan_update(existing, desired, holds_positions=holds)
    if not deferred:
        shell.deferred.discard(name)
    elif name not in shell.deferred and await shell.event(
            phase_ref, "Warning", "RestartDeferred",
            "pod template changed while the phase holds positions; set spec.restartToken to restart it anyway",
            logger):
        shell.deferred.add(name)  # warned once per deferral; a warning that was not posted is tried next pass
    if patch is not None:
        await kube.run(kube.patch_deployment, namespace, child, patch)
        if "replicas" in patch.get("spec", {}):
            await shell.event(phase_ref, "Normal", "Scaled", f"{child} -> {desired_replicas} replica(s)", logger)


# `kopf run -m titan.operator.kopf_app` uses the default registry.
if os.environ.get("TITAN_BRAIN_REGISTER_DEFAULT", "1") == "1":
    build_registry(registry=kopf.get_default_registry())
