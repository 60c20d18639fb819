"""Every Prometheus metric Titan exports, declared once (prefix ``titan_``).

Components import the objects they update from here; dashboards and alert rules may only name
metrics declared in this module (a test parses their PromQL and checks). Each process exposes the
default registry on its own /metrics port.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily
from prometheus_client.registry import Collector


class Tally(Collector):
    """A counter for the execution hot path: an increment is one dict addition (no lock, no child
    object), and the family is built when the registry is read. Only the thread that runs the engine
    adds to it; a scrape from another thread reads a copy of the counts taken under the GIL."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry = REGISTRY) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.counts: dict[tuple[str, ...], int] = {}
        registry.register(self)

    def add(self, labels: tuple[str, ...], amount: int = 1) -> None:
        self.counts[labels] = self.counts.get(labels, 0) + amount

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def describe(self) -> list[CounterMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = self._family()
        for labels, value in list(self.counts.items()):
            family.add_metric(labels, value)
        yield family


# Latency buckets fine enough for a sub-millisecond hot path: 10 µs .. 1 s.
LATENCY_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.000075, 0.0001, 0.00015, 0.0002, 0.00025, 0.0003, 0.0004,
    0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)

# --- execution ------------------------------------------------------------------------------
SIGNAL_ACK_LATENCY = Histogram(
    "titan_execution_signal_ack_seconds", "Signal received -> ack sent", ["phase"], buckets=LATENCY_BUCKETS
)
SIGNALS = Tally("titan_execution_signals_total", "Signals by phase and result", ["phase", "result"])
REJECTS = Tally("titan_execution_rejects_total", "Rejected signals by reason", ["reason"])
ORDERS = Tally("titan_execution_orders_total", "Orders by venue and final state", ["venue", "state"])
FILLS = Tally("titan_execution_fills_total", "Fills by phase and venue", ["phase", "venue"])
HEDGE_STEPS = Counter("titan_execution_hedge_steps_total", "Hedged-unit steps (placed, requoted, unwound, ...)",
                      ["step"])
HEDGE_UNITS = Counter("titan_execution_hedge_units_total", "Hedged units by outcome", ["outcome"])
EXPOSURE = Gauge("titan_execution_exposure_quote", "Gross exposure at mark by phase", ["phase"])
POSITION_QTY = Gauge("titan_execution_position_quantity", "Signed position by phase and symbol", ["phase", "symbol"])
EQUITY = Gauge("titan_equity_quote", "Equity by scope (phase id or total)", ["scope"])
PNL = Gauge("titan_pnl_quote", "PnL by phase and kind (realized, unrealized, fees, funding)", ["phase", "kind"])
TRADING_STATE = Gauge("titan_trading_state", "1 for the trading state in force", ["state"])
EXECUTION_CPUS = Gauge("titan_execution_cpu_allowed", "1 for each CPU the execution process may run on", ["cpu"])
STREAMS_OPEN = Gauge("titan_execution_streams_open", "Open signal streams by phase", ["phase"])
EXECUTION_DEGRADED = Gauge("titan_execution_degraded",
                           "1 while execution refuses entries for an unavailable dependency, by reason", ["reason"])
CONTROL_REJECTS = Counter("titan_execution_control_rejects_total", "Rejected control calls", ["call", "reason"])
OUTBOX_UNACKNOWLEDGED = Gauge("titan_execution_outbox_unacknowledged",
                              "Events in execution's outbox that JetStream has not acknowledged yet")
OUTBOX_ERRORS = Counter("titan_execution_outbox_errors_total", "Outbox problems by reason (write, invalid_event)",
                        ["reason"])

# --- brain ----------------------------------------------------------------------------------
ALLOCATION_WEIGHT = Gauge("titan_allocation_weight", "Allocation weight by phase", ["phase"])
ALLOCATION_NOTIONAL = Gauge("titan_allocation_notional_quote", "Allocated notional by phase", ["phase"])
BREAKER_STATE = Gauge("titan_breaker_tripped", "1 while a breaker is tripped", ["kind"])
RISK_STATE = Gauge("titan_risk_state", "1 for the Brain's current risk state", ["state"])
BRAIN_RECONCILES = Counter("titan_brain_reconciles_total", "Brain reconcile passes by result", ["result"])
BRAIN_DECISION_AGE = Gauge("titan_brain_last_decision_timestamp_seconds", "Unix time of the last allocation")

# --- phases ---------------------------------------------------------------------------------
PHASE_SIGNALS = Counter("titan_phase_signals_total", "Signals emitted by phase and setup", ["phase", "setup"])
PHASE_ACKS = Counter("titan_phase_acks_total", "Acks received by phase and result", ["phase", "result"])
PHASE_STATE = Gauge("titan_phase_state", "1 for the phase's current state", ["phase", "state"])
PHASE_TRADES_CLOSED = Counter(
    "titan_phase_trades_closed_total", "Closed trades by phase and outcome", ["phase", "outcome"]
)
PHASE_STREAM_UP = Gauge("titan_phase_stream_connected", "1 while the phase's gRPC stream is up", ["phase"])

# --- market data ----------------------------------------------------------------------------
MD_EVENTS = Counter("titan_md_events_total", "Market events by source, venue and kind", ["source", "venue", "kind"])
MD_LAG = Gauge("titan_md_lag_seconds", "Receive time minus exchange time, last event", ["venue", "symbol"])
MD_LAST_EVENT = Gauge("titan_md_last_event_timestamp_seconds", "Unix time of the last event", ["venue", "symbol"])
MD_GAPS = Counter("titan_md_gaps_total", "Sequence gaps detected", ["venue", "symbol"])
MD_RECONNECTS = Counter("titan_md_reconnects_total", "Feed reconnects", ["venue"])

# --- ledger / bus ---------------------------------------------------------------------------
LEDGER_EVENTS = Counter("titan_ledger_events_total", "Events handled by the ledger writer", ["kind", "result"])
LEDGER_LAG = Gauge("titan_ledger_lag_seconds", "Now minus the timestamp of the last event written")
BUS_REJECTS = Counter("titan_bus_rejects_total", "Malformed or unknown bus messages", ["consumer", "reason"])

# --- phase runtime ----------------------------------------------------------------------------
PHASE_ENTRIES_BLOCKED = Counter(
    "titan_phase_entries_blocked_total", "Entries the phase's entry gate did not send, by reason", ["phase", "reason"]
)
PHASE_EVENTS = Counter("titan_phase_events_total", "Strategy events by phase and kind", ["phase", "kind"])
PHASE_STREAM_RECONNECTS = Counter(
    "titan_phase_stream_reconnects_total", "Reconnect attempts of the phase's execution stream", ["phase"]
)
PHASE_STREAM_DROPPED = Counter(
    "titan_phase_stream_dropped_total", "Signals dropped before sending (queue full, ttl expired)", ["phase", "reason"]
)
PHASE_PARAM_RELOADS = Counter("titan_phase_param_reloads_total", "Parameter reloads by result", ["phase", "result"])
PHASE_ACK_LATENCY = Histogram(
    "titan_phase_signal_ack_seconds", "Signal handed to the stream -> ack received", ["phase"],
    buckets=LATENCY_BUCKETS,
)
PHASE_MD_EVENTS = Counter("titan_phase_md_events_total", "Market events consumed by phase and kind", ["phase", "kind"])

# --- NATS / JetStream health (the ledger writer's process reads them: core/bus/health_metrics.py) -----
JS_STREAM_MESSAGES = Gauge("titan_jetstream_stream_messages", "Messages stored in a catalog stream", ["stream"])
JS_STREAM_BYTES = Gauge("titan_jetstream_stream_bytes", "Bytes stored in a catalog stream", ["stream"])
JS_CONSUMER_PENDING = Gauge(
    "titan_jetstream_consumer_pending", "Messages of the stream not yet delivered to a durable consumer",
    ["stream", "consumer"],
)
JS_CONSUMER_ACK_PENDING = Gauge(
    "titan_jetstream_consumer_ack_pending", "Messages delivered to a durable consumer and not yet acked",
    ["stream", "consumer"],
)
JS_CONSUMER_REDELIVERED = Gauge(
    "titan_jetstream_consumer_redelivered", "Messages delivered more than once and not yet acked",
    ["stream", "consumer"],
)
NATS_CONNECTIONS = Gauge("titan_nats_connections", "Client connections of the NATS server", ["server"])
NATS_MEMORY = Gauge("titan_nats_memory_bytes", "Resident memory of the NATS server", ["server"])
NATS_IN_MESSAGES = Counter("titan_nats_in_messages", "Messages the NATS server received", ["server"])
NATS_OUT_MESSAGES = Counter("titan_nats_out_messages", "Messages the NATS server sent", ["server"])
NATS_SLOW_CONSUMERS = Counter(
    "titan_nats_slow_consumers", "Clients the NATS server cut off as slow consumers", ["server"]
)
BUS_HEALTH_FAILURES = Counter(
    "titan_bus_health_failures_total", "Failed reads of JetStream/NATS health by source and reason",
    ["source", "reason"],
)
