"""The Prometheus series of one phase, each looked up once (label lookups cost more than increments).

Counters live in memory: updating them is no I/O, so the pure :class:`PhaseCore` keeps them current
in every driver; the live process exposes them on /metrics."""

from __future__ import annotations

from typing import Any

from titan.core.metrics import (
    PHASE_ACKS,
    PHASE_ENTRIES_BLOCKED,
    PHASE_EVENTS,
    PHASE_PARAM_RELOADS,
    PHASE_SIGNALS,
    PHASE_STATE,
    PHASE_TRADES_CLOSED,
)

STATES = ("ACTIVE", "COOLDOWN", "BLOCKED")


class PhaseMetrics:
    def __init__(self, phase_id: str) -> None:
        self.phase_id = phase_id
        self._children: dict[tuple[int, str], Any] = {}
        self._state = ""

    def _inc(self, family: Any, label: str, value: str) -> None:
        key = (id(family), value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(**{"phase": self.phase_id, label: value})
        child.inc()

    def event(self, kind: str) -> None:
        self._inc(PHASE_EVENTS, "kind", kind)

    def signal(self, setup: str) -> None:
        self._inc(PHASE_SIGNALS, "setup", setup or "none")

    def entry_blocked(self, reason: str) -> None:
        self._inc(PHASE_ENTRIES_BLOCKED, "reason", reason)

    def ack(self, result: str) -> None:
        self._inc(PHASE_ACKS, "result", result)

    def trade_closed(self, outcome: str) -> None:
        self._inc(PHASE_TRADES_CLOSED, "outcome", outcome)

    def params(self, result: str) -> None:
        self._inc(PHASE_PARAM_RELOADS, "result", result)

    def state(self, state: str) -> None:
        """Set the state gauge: 1 for ``state``, 0 for the others (only when it changed)."""
        if state == self._state:
            return
        for name in {*STATES, state, self._state} - {""}:
            PHASE_STATE.labels(phase=self.phase_id, state=name).set(1 if name == state else 0)
        self._state = state
