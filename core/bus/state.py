"""Shared control state on JetStream KV: budgets, the trading state, the ledger writer's heartbeat, the
Brain's carry checkpoint, phase parameters.

Values are serialized titan.v1 protobufs (parameters: canonical JSON). Watches yield the current
values first, then every later put; deletions and undecodable values are skipped (the latter counted
in ``titan_bus_rejects_total``). Close a watch you leave early (``contextlib.aclosing``) so its
subscription ends at once.

A KV watch is a consumer on the server: a NATS server that restarts forgets it, and the watch would
stay quiet for good (a kill switch would never reach execution). Given the client, a store's watches
notice the client's reconnects (within ``WATCH_CHECK_S``) and open again: the current values come
once more, then every later put."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from titan.core.catalog import BRAIN_CARRY_KEY, LEDGER_HEARTBEAT_KEY, TRADING_STATE_KEY, BucketSpec, Catalog
from titan.core.metrics import BUS_REJECTS
from titan.core.tasks import raise_if_cancelled
from titan.v1 import events_pb2, trading_pb2

log = logging.getLogger("titan.bus")

M = TypeVar("M", bound=Message)
V = TypeVar("V")

_DELETE_OPS = {"DEL", "PURGE"}
WATCH_CHECK_S = 1.0  # how often a quiet watch looks for a reconnect of its client


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: equal dicts give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _parse(cls: type[M], data: bytes) -> M:
    msg = cls()
    msg.ParseFromString(data)
    return msg


def _parse_params(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("parameters must be a JSON object")
    return value


class StateStore:
    """Typed access to the catalog's KV buckets. Bind lazily (``StateStore(js, catalog)``) or
    eagerly (``await StateStore.open(js, catalog)``); buckets must exist (:func:`ensure_jetstream`)."""

    def __init__(self, js: JetStreamContext, catalog: Catalog, *, client: Client | None = None) -> None:
        self.js = js
        self.catalog = catalog
        self.client = client  # whose reconnects reopen the watches (None: watches never reopen)
        self._kv: dict[str, KeyValue] = {}

    @classmethod
    async def open(cls, js: JetStreamContext, catalog: Catalog, *, client: Client | None = None) -> StateStore:
        store = cls(js, catalog, client=client)
        for spec in catalog.buckets:
            await store._bucket(spec)
        return store

    async def _bucket(self, spec: BucketSpec) -> KeyValue:
        kv = self._kv.get(spec.name)
        if kv is None:
            kv = await self.js.key_value(spec.name)
            self._kv[spec.name] = kv
        return kv

    # --- generic ----------------------------------------------------------------------------
    async def _get(self, spec: BucketSpec, key: str) -> bytes | None:
        kv = await self._bucket(spec)
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:  # also KeyDeletedError
            return None
        return entry.value

    async def _put(self, spec: BucketSpec, key: str, value: bytes) -> int:
        kv = await self._bucket(spec)
        return await kv.put(key, value)

    async def _watch(
        self, spec: BucketSpec, keys: str, parse: Callable[[bytes], V], *, deletes: bool = False
    ) -> AsyncIterator[tuple[str, V | None]]:
        """(key, value) for the current entries, then for each put; with ``deletes``, (key, None)
        when a key is deleted or purged (otherwise deletions are skipped). Reopened after each
        reconnect of the store's client (the current entries then come again)."""
        kv = await self._bucket(spec)
        while True:
            reconnects = self._reconnects()
            watcher = await kv.watch(keys)
            try:
                raise_if_cancelled()  # a stop during the subscribe: the watch must end, not run on
                async for entry in self._entries(watcher, reconnects):
                    if entry.operation in _DELETE_OPS or entry.value is None:
                        if deletes and entry.operation in _DELETE_OPS:
                            yield entry.key, None
                        continue
                    try:
                        value = parse(entry.value)
                    except (DecodeError, ValueError) as exc:
                        BUS_REJECTS.labels(consumer=f"kv:{spec.name}", reason="decode").inc()
                        log.warning("kv %s: undecodable value at %s: %s", spec.name, entry.key, exc)
                        continue
                    yield entry.key, value
            finally:
                try:
                    await watcher.stop()  # type: ignore[no-untyped-call]
                except Exception as exc:  # connection already closed
                    log.debug("kv %s: watcher stop: %s", spec.name, exc)
            if self._reconnects() == reconnects:  # the watcher was stopped: the watch is over
                return
            log.info("kv %s: watch on %s opened again after a NATS reconnect", spec.name, keys)

    def _reconnects(self) -> int:
        return int(self.client.stats["reconnects"]) if self.client is not None else 0

    async def _entries(self, watcher: KeyValue.KeyWatcher, reconnects: int) -> AsyncIterator[KeyValue.Entry]:
        """The watcher's entries, until it stops or (with a client) the client reconnected."""
        if self.client is None:
            async for entry in watcher:
                if entry is not None:  # None: the "initial values done" marker
                    yield entry
            return
        while self._reconnects() == reconnects:
            raise_if_cancelled()
            try:
                entry = await watcher.updates(timeout=WATCH_CHECK_S)  # type: ignore[no-untyped-call]
            except NatsTimeoutError:
                continue
            if entry is KeyValue.KeyWatcher.STOP_ITER:
                return
            if entry is not None:
                yield entry

    # --- budgets ----------------------------------------------------------------------------
    async def put_budget(self, budget: trading_pb2.Budget) -> int:
        """Store ``budget`` under its phase id; returns the KV revision."""
        key = self.catalog.budget_key(budget.phase_id)
        return await self._put(self.catalog.budgets_bucket, key, budget.SerializeToString(deterministic=True))

    async def get_budget(self, phase_id: str) -> trading_pb2.Budget | None:
        data = await self._get(self.catalog.budgets_bucket, self.catalog.budget_key(phase_id))
        return None if data is None else _parse(trading_pb2.Budget, data)

    async def delete_budget(self, phase_id: str) -> None:
        kv = await self._bucket(self.catalog.budgets_bucket)
        await kv.delete(self.catalog.budget_key(phase_id))

    async def budgets(self) -> dict[str, trading_pb2.Budget]:
        kv = await self._bucket(self.catalog.budgets_bucket)
        try:
            keys = await kv.keys()
        except NoKeysError:
            return {}
        out: dict[str, trading_pb2.Budget] = {}
        for key in keys:
            budget = await self.get_budget(key)
            if budget is not None:
                out[key] = budget
        return out

    async def watch_budgets(self) -> AsyncIterator[tuple[str, trading_pb2.Budget | None]]:
        """(phase id, budget) for every budget currently stored, then for each one put; (phase id,
        None) when a phase's budget is deleted (the Brain no longer funds it: reduce only)."""
        async for key, budget in self._watch(
            self.catalog.budgets_bucket, ">", lambda b: _parse(trading_pb2.Budget, b), deletes=True
        ):
            yield key, budget

    # --- trading state ----------------------------------------------------------------------
    async def put_trading_state(self, state: trading_pb2.TradingState) -> int:
        return await self._put(
            self.catalog.control_bucket, TRADING_STATE_KEY, state.SerializeToString(deterministic=True)
        )

    async def get_trading_state(self) -> trading_pb2.TradingState | None:
        data = await self._get(self.catalog.control_bucket, TRADING_STATE_KEY)
        return None if data is None else _parse(trading_pb2.TradingState, data)

    async def watch_trading_state(self) -> AsyncIterator[trading_pb2.TradingState]:
        """The current trading state (if any), then each new one."""
        async for _key, state in self._watch(
            self.catalog.control_bucket, TRADING_STATE_KEY, lambda b: _parse(trading_pb2.TradingState, b)
        ):
            if state is not None:
                yield state

    # --- the ledger writer's heartbeat ---------------------------------------------------------
    async def put_ledger_heartbeat(self, heartbeat: events_pb2.LedgerHeartbeat) -> int:
        return await self._put(
            self.catalog.control_bucket, LEDGER_HEARTBEAT_KEY, heartbeat.SerializeToString(deterministic=True)
        )

    async def watch_ledger_heartbeat(self) -> AsyncIterator[events_pb2.LedgerHeartbeat]:
        """The last heartbeat (if any), then each new one."""
        async for _key, heartbeat in self._watch(
            self.catalog.control_bucket, LEDGER_HEARTBEAT_KEY, lambda b: _parse(events_pb2.LedgerHeartbeat, b)
        ):
            if heartbeat is not None:
                yield heartbeat

    # --- the Brain's carry checkpoint --------------------------------------------------------
    async def put_brain_carry(self, checkpoint: events_pb2.BrainCarry) -> int:
        return await self._put(
            self.catalog.control_bucket, BRAIN_CARRY_KEY, checkpoint.SerializeToString(deterministic=True)
        )

    async def get_brain_carry(self) -> events_pb2.BrainCarry | None:
        data = await self._get(self.catalog.control_bucket, BRAIN_CARRY_KEY)
        return None if data is None else _parse(events_pb2.BrainCarry, data)

    # --- parameters -------------------------------------------------------------------------
    async def put_params(self, phase_id: str, params: dict[str, Any]) -> int:
        """Store a phase's parameters as canonical JSON (must be JSON-serializable, no NaN)."""
        data = canonical_json(params).encode()
        return await self._put(self.catalog.params_bucket, self.catalog.budget_key(phase_id), data)

    async def get_params(self, phase_id: str) -> dict[str, Any] | None:
        data = await self._get(self.catalog.params_bucket, self.catalog.budget_key(phase_id))
        return None if data is None else _parse_params(data)

    async def watch_params(self, phase_id: str) -> AsyncIterator[dict[str, Any]]:
        async for _key, params in self._watch(
            self.catalog.params_bucket, self.catalog.budget_key(phase_id), _parse_params
        ):
            if params is not None:
                yield params
