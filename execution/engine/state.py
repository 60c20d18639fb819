"""What the engine holds and the values it speaks in: its configuration, a decided signal, a venue
report, a remembered signal id, and :class:`EngineState` — the books every engine module reads and
changes (orders, working orders per instrument, positions, the gate and its counters, the output
buffer of the input being handled)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from titan.core.clock import Clock
from titan.execution.engine.expiries import Expiries
from titan.execution.engine.outputs import EngineMetrics, Outputs, Update
from titan.execution.gate import GateConfig, OpenOrderBook, RateWindow, RiskGate
from titan.execution.market import InstrumentMarket, MarketData
from titan.execution.orders import ManagedOrder
from titan.execution.paper import PaperConfig, PaperVenue
from titan.execution.portfolio import Portfolio
from titan.v1 import common_pb2, trading_pb2

if TYPE_CHECKING:
    from titan.execution.engine.hedge import HedgeUnit

ZERO = Decimal(0)
PERP = common_pb2.InstrumentKind.INSTRUMENT_KIND_PERP
BUY = common_pb2.Side.SIDE_BUY
SELL = common_pb2.Side.SIDE_SELL
NS_PER_DAY = 86_400 * 1_000_000_000

WorkingKey = tuple[str, str, int]  # (venue, symbol, instrument)
FundingKey = tuple[str, str, int]  # (venue, symbol, funding time)


@dataclass(frozen=True)
class EngineConfig:
    venue: str = "paper"                     # "paper" matches internally; anything else = external venue
    gate: GateConfig = field(default_factory=GateConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    dedup_horizon_ns: int = 60 * 1_000_000_000  # decided signal ids remembered this long (>= 2 windows)
    max_remembered_signals: int = 5_000_000
    order_retention_ns: int = 300 * 1_000_000_000  # terminal orders kept in memory this long
    publish_decisions: bool = True


@dataclass(frozen=True, slots=True)
class VenueReport:
    """What an external venue says about one of our orders (mapped from ccxt by live.py)."""

    client_order_id: str
    kind: str                     # "accepted" | "rejected" | "canceled" | "expired" | "fill"
    venue_order_id: str = ""
    reason: str = ""
    fill_id: str = ""
    price: Decimal = ZERO
    quantity: Decimal = ZERO
    fee: Decimal = ZERO
    maker: bool = False
    ts_ns: int = 0


@dataclass(slots=True)
class Decision:
    ack: trading_pb2.SignalAck
    updates: list[Update]
    submissions: list[ManagedOrder]   # orders an external venue must be sent (live mode)
    cancels: list[ManagedOrder]
    pending: list[tuple[ManagedOrder, InstrumentMarket]] = field(default_factory=list)  # paper orders to match
    slippage_bps: Decimal | None = None
    signal: trading_pb2.Signal | None = None  # set when a decision event is due
    orders: list[tuple[ManagedOrder, int]] = field(default_factory=list)  # touched by decide, published by execute


class SeenSignal:
    """A decided signal id: when, whether it was accepted, and the client order ids it created."""

    __slots__ = ("accepted", "cids", "ts")

    def __init__(self, ts: int, accepted: bool, cids: tuple[str, ...]) -> None:
        self.ts = ts
        self.accepted = accepted
        self.cids = cids


class EngineState:
    """The engine's books. Every engine module works on one of these; nothing here does I/O."""

    def __init__(self, clock: Clock, keys: dict[str, bytes], config: EngineConfig | None = None) -> None:
        self.clock = clock
        self.started_ns = clock.now_ns()
        self.config = config or EngineConfig()
        self.external = self.config.venue != "paper"
        self.market = MarketData()
        self.paper = PaperVenue(self.config.paper)
        self.portfolio = Portfolio(self.config.paper.starting_capital)
        self.open_book = OpenOrderBook()
        self.rates = RateWindow()
        self.gate = RiskGate(
            self.config.gate, keys, self.market, self.portfolio, self.open_book, self.rates, self.paper
        )
        self.trading_state = trading_pb2.TradingState(mode=common_pb2.TradingMode.TRADING_MODE_UNSPECIFIED)
        self.orders: dict[str, ManagedOrder] = {}
        self.working: dict[WorkingKey, dict[str, ManagedOrder]] = {}  # by client order id, oldest first
        self.expiries = Expiries()  # when resting orders expire (timers.tick)
        # While a market event walks one instrument's working orders (matching.walk_working): that
        # dict, and the orders that closed or came to rest on it meanwhile, applied once the walk ends.
        self.walking: dict[str, ManagedOrder] | None = None
        self.walk_closed: list[str] = []
        self.walk_rested: list[ManagedOrder] = []
        self.terminal: deque[tuple[int, str]] = deque()           # (closed at, client order id)
        self.seen_order: deque[tuple[int, tuple[str, str]]] = deque()  # (decided at, (phase, signal id))
        self.fill_ids: set[tuple[str, str]] = set()               # (venue, fill id) booked (external venues)
        self.settled_funding: set[FundingKey] = set()
        self.adding_left: dict[str, Decimal] = {}  # cid -> notional still open on adding orders
        self.known_cids: set[str] = set()  # client order ids the ledger knows (recovery)
        self.cancels: list[ManagedOrder] = []  # external venue orders to cancel (expired)
        self.cancel_requested: set[str] = set()
        self.outputs = Outputs(self.config.paper.maintenance_margin_rate)
        self.metrics = EngineMetrics()
        self.hedges: dict[tuple[str, str], HedgeUnit] = {}  # (phase, signal id) -> hedged unit (hedge.py)
