"""The Brain's NATS shell, shared by the kopf operator and the local driver.

Feeds equity and closed trades from JetStream (durable consumer ``catalog.brain_consumer``) into a
:class:`BrainCore`, and applies each :class:`Decision`: budgets and the trading state to NATS KV,
allocation / breaker / trading-state events to JetStream (the ledger writer records them), metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from titan.core import metrics
from titan.core.bus import (
    DurableConsumer,
    Reject,
    StateStore,
    canonical_json,
    decode_event,
    ensure_jetstream,
    publish_event,
    unpack,
)
from titan.core.catalog import Catalog
from titan.core.clock import NS_PER_S, Clock
from titan.core.money import MoneyError, to_wire
from titan.core.tasks import cancel_all, raise_if_cancelled
from titan.operator.brain import BrainCore, BrainPolicy, Decision, PhaseSpec
from titan.operator.brain.feed import DecisionOutbox, observe_event
from titan.operator.stream_replay import StreamReplay
from titan.v1 import events_pb2

log = logging.getLogger("titan.brain")

CHECKPOINT_EVERY_S = 6 * 3600  # how often a running Brain moves its carry checkpoint up


class BrainRuntime:
    """One organism's Brain: core state + NATS I/O. Not thread-safe; one event loop."""

    def __init__(self, nc: Client, catalog: Catalog, clock: Clock, *, consume: bool = True) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.catalog = catalog
        self.clock = clock
        self.core = BrainCore()
        self.policy = BrainPolicy()
        self.store = StateStore(self.js, catalog)
        self.replay = StreamReplay(self.js, catalog, self.store)
        self.lock = asyncio.Lock()
        self.last_decision: Decision | None = None
        self._consume = consume
        self._consumer: DurableConsumer[events_pb2.Event] | None = None
        self._replayed = False
        self._tasks: list[asyncio.Task[None]] = []
        self.outbox = DecisionOutbox()
        self._budget_phases: set[str] = set()
        self._params: dict[str, str] = {}
        self.events_seen = 0

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """:meth:`open`, then :meth:`follow` under the current policy (the local driver sets it first)."""
        await self.open()
        await self.follow()

    async def open(self) -> None:
        """The streams, buckets and the state store; nothing consumed yet."""
        await ensure_jetstream(self.js, self.catalog)
        self.store = await StateStore.open(self.js, self.catalog)
        self.replay = StreamReplay(self.js, self.catalog, self.store)

    async def follow(self) -> None:
        """Replay what the durable consumer acked before (:meth:`_replay_trades`, over the current
        policy's performance window), then consume the rest. Once; the kopf driver calls it when the
        TitanBrain, and so the window, is known."""
        if not self._consume or self._consumer is not None:
            return
        if not self._replayed:  # once: a second replay would find every id counted and lose the carry
            self._replayed = True
            try:
                replayed = await self._replay_trades(self.policy.performance.window_s)
                if replayed:
                    log.info("performance: %d closed trades of the last %d s replayed", replayed,
                             self.policy.performance.window_s)
            except Exception as exc:  # the tilt then restarts neutral, as without history
                log.warning("performance history not replayed: %s: %s", type(exc).__name__, exc)
        consumer = DurableConsumer(self.nc, self.catalog.brain_consumer, self._on_event, decode_event)
        await consumer.start()
        self._consumer = consumer
        self._tasks.append(asyncio.create_task(self._keep_checkpointing(), name="brain carry checkpoint"))

    async def _replay_trades(self, window_s: int) -> int:
        """What this Brain's durable consumer already acked (before a restart) back into the core:
        what open positions carried, from the last carry checkpoint on, and the closed trades of the
        last ``window_s`` for the performance tracker (:class:`StreamReplay`). The durable goes on
        from there, so no trade counts twice. The breakers' own state is persisted with the core.
        Returns the trades recorded."""
        upto = await self.replay.ack_floor()
        if not upto:  # first start: the durable will deliver everything itself
            return 0
        now = self.clock.now_ns()
        return await self.replay.into(self.core, now - window_s * NS_PER_S, upto, now)

    async def _keep_checkpointing(self) -> None:
        """Every ``CHECKPOINT_EVERY_S``, move the carry checkpoint up to the performance window's
        start (:meth:`StreamReplay.advance`), so a restart reads a window and a few hours, however
        long this Brain ran."""
        while True:
            raise_if_cancelled()  # nats-py can swallow one
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            try:
                upto = await self.replay.ack_floor()
                if upto:
                    now = self.clock.now_ns()
                    await self.replay.advance(now - self.policy.performance.window_s * NS_PER_S, upto, now)
            except Exception as exc:  # the next restart reads further back, nothing is lost
                log.warning("carry checkpoint not advanced: %s: %s", type(exc).__name__, exc)

    async def close(self) -> None:
        await cancel_all(self._tasks)
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def restore(self, state: dict[str, Any] | None) -> None:
        """Adopt persisted core state (breakers, day start, high-water mark) once, at start; what
        the replay from JetStream built (closed trades, carried fees and funding, counted ids) is kept."""
        if state:
            restored = BrainCore.from_dict(state)
            restored.keep_feed_state(self.core)
            self.core = restored

    # --- inputs -------------------------------------------------------------------------------
    async def _on_event(self, message: events_pb2.Event) -> None:
        refused: MoneyError | None = None
        for event in unpack(message):  # a malformed amount refuses its event, not the rest of a batch
            try:
                observe_event(self.core, event, self.policy)
            except MoneyError as exc:
                refused = refused or exc
                continue
            self.events_seen += 1
        if refused is not None:
            raise Reject("bad_decimal", str(refused))

    # --- decisions ----------------------------------------------------------------------------
    def decide(self, policy: BrainPolicy, phases: Sequence[PhaseSpec]) -> Decision:
        self.policy = policy
        decision = self.core.decide(self.clock.now_ns(), policy, phases)
        self.last_decision = decision
        return decision

    async def apply(self, decision: Decision) -> None:
        """Publish what the decision says; safe to repeat (KV puts; events deduplicated by id)."""
        output = self.outbox.plan(decision)
        for budget in output.budgets:
            await self.store.put_budget(budget)
        for gone in self._budget_phases - set(decision.phases):
            # Deleted phase: no budget means execution lets it only reduce.
            try:
                await self.store.delete_budget(gone)
            except Exception as exc:
                log.warning("could not delete the budget of %s: %s", gone, exc)
        self._budget_phases = set(decision.phases)
        if output.trading_state is not None:
            await self.store.put_trading_state(output.trading_state)
        for event in output.events:
            await self._publish(event)
        self.outbox.commit(output)
        self.record_metrics(decision)

    async def _publish(self, event: events_pb2.Event) -> None:
        await publish_event(self.js, self.catalog, event)

    async def put_params(self, phase_id: str, params: dict[str, Any]) -> bool:
        """Publish a phase's params to KV when they changed; True if written."""
        text = canonical_json(params)
        if self._params.get(phase_id) == text:
            return False
        await self.store.put_params(phase_id, params)
        self._params[phase_id] = text
        return True

    @staticmethod
    def record_metrics(decision: Decision) -> None:
        for p in decision.phases.values():
            metrics.ALLOCATION_WEIGHT.labels(phase=p.phase_id).set(float(p.weight))
            metrics.ALLOCATION_NOTIONAL.labels(phase=p.phase_id).set(float(p.notional))
        metrics.BREAKER_STATE.labels(kind="hard").set(1 if decision.hard_tripped else 0)
        metrics.BREAKER_STATE.labels(kind="soft").set(1 if decision.soft_active else 0)
        for state in ("normal", "cautious", "halted"):
            metrics.RISK_STATE.labels(state=state).set(1 if decision.risk_state.value == state else 0)
        metrics.BRAIN_DECISION_AGE.set(decision.ts_ns / NS_PER_S)


def status_for_brain(decision: Decision, core_state: dict[str, Any]) -> dict[str, Any]:
    """TitanBrain.status from a decision."""
    breaker = "hard" if decision.hard_tripped else ("soft" if decision.soft_active else "ok")
    return {
        "equity": to_wire(decision.equity),
        "dayStartEquity": to_wire(decision.day_start_equity),
        "highWatermark": to_wire(decision.high_watermark),
        "drawdown": to_wire(decision.daily_drawdown),
        "peakDrawdown": to_wire(decision.peak_drawdown),
        "riskState": decision.risk_state.value,
        "tradingMode": decision.trading_mode.value,
        "reason": decision.trading_reason,
        "bandLevel": decision.band_level,
        "tierLeverage": to_wire(decision.tier_leverage),
        "breaker": {"state": breaker, "hard": decision.hard_tripped, "soft": decision.soft_active,
                    "reason": decision.trading_reason if breaker != "ok" else ""},
        "lastDecisionTime": _iso(decision.ts_ns),
        "lastEquityTime": _iso(decision.equity_ts_ns) if decision.equity_ts_ns else "",
        "budgetVersion": str(decision.budget_version),
        "core": core_state,
    }


def status_for_phase(decision: Decision, phase_id: str, generation: int | None) -> dict[str, Any]:
    """TitanPhase.status from a decision."""
    p = decision.phases[phase_id]
    status: dict[str, Any] = {
        "state": p.state.value,
        "reason": p.reason,
        "allocation": {
            "weight": to_wire(p.weight),
            "notional": to_wire(p.notional),
            "maxLeverage": to_wire(p.max_leverage),
            "maxNotional": to_wire(p.max_notional),
            "modifier": to_wire(p.modifier),
        },
        "equity": "" if p.equity is None else to_wire(p.equity),  # the phase's own, once execution reports it
        "pnl": {
            "realized": to_wire(p.pnl_realized),
            "unrealized": to_wire(p.pnl_unrealized),
            "today": to_wire(p.pnl_today),
        },
        "drawdown": to_wire(p.drawdown),
        "budgetVersion": str(decision.budget_version),
        "replicas": p.replicas,
        "lastDecisionTime": _iso(decision.ts_ns),
        "conditions": [
            {
                "type": "Trading",
                "status": "True" if p.state.value == "Active" else "False",
                "reason": p.state.value,
                "message": p.reason[:500],
            }
        ],
    }
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def _iso(ts_ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts_ns // NS_PER_S))
