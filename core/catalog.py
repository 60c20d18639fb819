"""The one catalog of NATS subjects, JetStream streams, consumers and KV buckets.

Nothing else in Titan spells a subject string: build subjects with a :class:`Catalog`.

Subject shapes (see ARCHITECTURE.md):
  titan.md.<venue>.<symbol>.<kind>          market data (core NATS, high rate, not persisted)
  titan.evt.<source>.<kind>.v1              events (JetStream stream TITAN_EVENTS -> ledger)
  titan.cmd.<target>.<verb>.v1              commands (JetStream stream TITAN_COMMANDS)
  titan.diag.<source>.v1                    1 Hz diagnostics (core NATS, not persisted)

A catalog may carry a namespace (``TITAN_NAMESPACE``): subjects are then prefixed with
``<namespace>.`` and stream/bucket names with ``<namespace>_``, so several organisms (or test
modules) can share one NATS server without seeing each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


def token(value: str) -> str:
    """Validate one subject token (no dots, spaces or wildcards)."""
    if not _TOKEN.match(value):
        raise ValueError(f"invalid NATS subject token: {value!r}")
    return value


class MarketKind(StrEnum):
    """The `<kind>` token of market-data subjects; one per MarketEvent payload field."""

    TRADE = "trade"
    TOP = "top"
    DEPTH = "depth"
    FUNDING = "funding"
    MARK = "mark"
    OPEN_INTEREST = "open_interest"
    LIQUIDATION = "liquidation"
    CANDLE = "candle"


class EventKind(StrEnum):
    """The `<kind>` token of event subjects; one per titan.v1.Event body field."""

    ORDER = "order"
    FILL = "fill"
    POSITION = "position"
    FUNDING = "funding"
    EQUITY = "equity"
    DECISION = "decision"
    ALLOCATION = "allocation"
    BREAKER = "breaker"
    PROPOSAL = "proposal"
    TRADING_STATE = "trading_state"
    HEDGE = "hedge"
    BATCH = "batch"  # several events in one message (titan.v1.EventBatch)


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    description: str
    max_age_s: float = 0.0          # 0 = keep forever
    duplicate_window_s: float = 120.0


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    durable: str
    filter_subject: str
    description: str
    ack_wait_s: float = 30.0
    max_deliver: int = -1
    max_ack_pending: int = 10_000


@dataclass(frozen=True)
class BucketSpec:
    name: str
    description: str
    history: int = 5


TRADING_STATE_KEY = "trading_state"
LEDGER_HEARTBEAT_KEY = "ledger_heartbeat"  # control bucket: titan.v1.LedgerHeartbeat, about 1 Hz
BRAIN_CARRY_KEY = "brain_carry"  # control bucket: titan.v1.BrainCarry, written by the Brain at each start
LEDGER_DURABLE = "ledger-writer"
BRAIN_DURABLE = "brain"


@dataclass(frozen=True)
class Catalog:
    """Subjects, streams, consumers and buckets for one organism namespace ("" = the default)."""

    namespace: str = ""

    def __post_init__(self) -> None:
        if self.namespace:
            token(self.namespace)

    # --- roots ---------------------------------------------------------------------------
    @property
    def root(self) -> str:
        return f"{self.namespace}.titan" if self.namespace else "titan"

    def _name(self, base: str) -> str:
        return f"{self.namespace}_{base}" if self.namespace else base

    # --- market data ---------------------------------------------------------------------
    def md_subject(self, venue: str, symbol: str, kind: MarketKind | str) -> str:
        return f"{self.root}.md.{token(venue)}.{token(symbol)}.{token(str(kind))}"

    def md_filter(self, venue: str = "*", symbol: str = "*", kind: str = "*") -> str:
        """A subscription filter over market data; `*` tokens are wildcards."""
        parts = [p if p == "*" else token(p) for p in (venue, symbol, kind)]
        return f"{self.root}.md." + ".".join(parts)

    @property
    def md_all(self) -> str:
        return f"{self.root}.md.>"

    # --- events --------------------------------------------------------------------------
    def event_subject(self, source: str, kind: EventKind | str) -> str:
        return f"{self.root}.evt.{token(source)}.{token(str(kind))}.v1"

    def event_filter(self, source: str = "*", kind: str = "*") -> str:
        parts = [p if p == "*" else token(p) for p in (source, kind)]
        return f"{self.root}.evt." + ".".join(parts) + ".v1"

    @property
    def events_all(self) -> str:
        return f"{self.root}.evt.>"

    # --- commands ------------------------------------------------------------------------
    def command_subject(self, target: str, verb: str) -> str:
        return f"{self.root}.cmd.{token(target)}.{token(verb)}.v1"

    @property
    def commands_all(self) -> str:
        return f"{self.root}.cmd.>"

    # --- diagnostics ---------------------------------------------------------------------
    def diag_subject(self, source: str) -> str:
        return f"{self.root}.diag.{token(source)}.v1"

    @property
    def diag_all(self) -> str:
        return f"{self.root}.diag.>"

    # --- JetStream -----------------------------------------------------------------------
    @property
    def events_stream(self) -> StreamSpec:
        return StreamSpec(
            name=self._name("TITAN_EVENTS"),
            subjects=(self.events_all,),
            description="Orders, fills, positions, funding, equity, decisions, allocations, breakers",
            duplicate_window_s=600.0,
        )

    @property
    def commands_stream(self) -> StreamSpec:
        return StreamSpec(
            name=self._name("TITAN_COMMANDS"),
            subjects=(self.commands_all,),
            description="Commands to components (flatten, reload, ...)",
            max_age_s=24 * 3600.0,
        )

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        return (self.events_stream, self.commands_stream)

    @property
    def ledger_consumer(self) -> ConsumerSpec:
        return ConsumerSpec(
            stream=self.events_stream.name,
            durable=LEDGER_DURABLE,
            filter_subject=self.events_all,
            description="Persists every event to PostgreSQL idempotently",
        )

    @property
    def brain_consumer(self) -> ConsumerSpec:
        return ConsumerSpec(
            stream=self.events_stream.name,
            durable=BRAIN_DURABLE,
            filter_subject=self.event_filter("execution", "*"),
            description="Feeds equity, fills and PnL to the Brain",
        )

    @property
    def budgets_bucket(self) -> BucketSpec:
        return BucketSpec(name=self._name("TITAN_BUDGETS"), description="titan.v1.Budget per phase id")

    @property
    def control_bucket(self) -> BucketSpec:
        return BucketSpec(name=self._name("TITAN_CONTROL"), description="Organism-wide control values")

    @property
    def params_bucket(self) -> BucketSpec:
        return BucketSpec(name=self._name("TITAN_PARAMS"), description="Phase parameters (JSON) per phase id")

    @property
    def buckets(self) -> tuple[BucketSpec, ...]:
        return (self.budgets_bucket, self.control_bucket, self.params_bucket)

    @staticmethod
    def budget_key(phase_id: str) -> str:
        return token(phase_id)


DEFAULT = Catalog()
