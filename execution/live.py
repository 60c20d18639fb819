"""The live venue via ccxt (async): Bybit linear perpetuals and Binance spot.

Opt-in only: the runtime builds it when ``TITAN_MODE=live`` (which itself requires
``TITAN_LIVE_CONFIRM=true`` and API keys, see titan.core.config). ``TITAN_TESTNET`` (default true)
selects the venue's testnet/sandbox.

* Orders leave with the engine's deterministic client order id (``clientOrderId``, which ccxt maps
  to Bybit's ``orderLinkId`` and Binance's ``newClientOrderId``): a resubmission after a timeout is
  refused by the venue as a duplicate instead of becoming a second order.
* Every venue answer is mapped into :class:`titan.execution.engine.VenueReport` and applied through
  the engine's order state machine (accepted / rejected / canceled / expired / fill); fills are
  booked once per venue trade id.
* Rate limits: ccxt's built-in limiter (``enableRateLimit``) spaces requests; ccxt ``RateLimitExceeded``
  and ``DDoSProtection`` answers back off; polling runs at most once per ``poll_interval_s``.
* A network error while placing leaves the order SUBMITTED; the poller then asks the venue for the
  order by its client id and applies what the venue knows (reconciliation). The same runs once at
  start, before the server accepts signals.
* Every order the engine creates goes out through :meth:`LiveVenue.dispatch`: a signal's legs, a
  flatten's orders and the steps of a hedged unit (re-quotes, unwinds), which the engine creates on
  its own on a tick (``Engine.take_submissions``); cancels too (expiry, halt, a unit's deadline). A
  cancel that fails is asked again at the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from titan.core.money import to_decimal
from titan.execution import orders as order_states
from titan.execution.engine import Engine, Update, VenueReport
from titan.execution.orders import ManagedOrder
from titan.v1 import common_pb2, trading_pb2

log = logging.getLogger("titan.execution.live")

PERP = common_pb2.InstrumentKind.INSTRUMENT_KIND_PERP
SPOT = common_pb2.InstrumentKind.INSTRUMENT_KIND_SPOT
QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "USD", "BTC", "ETH")
_ZERO = Decimal(0)

VENUES: dict[str, dict[str, Any]] = {
    # ccxt id, default market type, instruments Titan trades there
    "bybit": {"ccxt": "bybit", "defaultType": "swap", "types": ["linear"], "instruments": {PERP}},
    "binance": {"ccxt": "binance", "defaultType": "spot", "types": ["spot"], "instruments": {SPOT}},
}

STATUS = {"open": "accepted", "closed": None, "canceled": "canceled", "cancelled": "canceled",
          "expired": "expired", "rejected": "rejected"}


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` -> (``BTC``, ``USDT``) using the known quote currencies."""
    for q in QUOTES:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)], q
    raise ValueError(f"cannot split {symbol!r} into base and quote")


def ccxt_symbol(symbol: str, instrument: int) -> str:
    """Titan symbol + instrument kind -> ccxt unified symbol (``BTC/USDT:USDT`` for a linear perp)."""
    base, quote = split_symbol(symbol)
    return f"{base}/{quote}:{quote}" if instrument == PERP else f"{base}/{quote}"


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return _ZERO
    return to_decimal(str(value))


def fee_in_quote(fee: dict[str, Any] | None, base: str, quote: str, price: Decimal) -> Decimal:
    """A ccxt fee in quote currency: quote as is, base converted at the fill price, anything else
    (e.g. BNB) is not convertible here and counted as 0 (logged)."""
    if not fee or fee.get("cost") in (None, ""):
        return _ZERO
    cost = _dec(fee.get("cost"))
    cur = fee.get("currency")
    if cur in (None, quote):
        return cost
    if cur == base:
        return cost * price
    log.warning("fee in %s cannot be converted to %s; booked as 0", cur, quote)
    return _ZERO


def order_reports(order: ManagedOrder, data: dict[str, Any]) -> list[VenueReport]:
    """Map a ccxt order structure onto reports for ``order`` (status only; fills come from trades)."""
    vid = str(data.get("id") or "")
    status = (data.get("status") or "").lower()
    kind = STATUS.get(status)
    reports = [VenueReport(order.client_order_id, "accepted", venue_order_id=vid)]
    if kind and kind != "accepted":
        info = data.get("info") or {}
        reason = str(info.get("rejectReason") or info.get("cancelType") or status)
        reports.append(VenueReport(order.client_order_id, kind, venue_order_id=vid, reason=reason))
    return reports


def trade_report(order: ManagedOrder, trade: dict[str, Any]) -> VenueReport:
    base, quote = split_symbol(order.symbol)
    price = _dec(trade.get("price"))
    return VenueReport(
        order.client_order_id,
        "fill",
        venue_order_id=str(trade.get("order") or ""),
        fill_id=str(trade.get("id") or ""),
        price=price,
        quantity=_dec(trade.get("amount")),
        fee=fee_in_quote(trade.get("fee"), base, quote, price),
        maker=trade.get("takerOrMaker") == "maker",
        ts_ns=int(trade.get("timestamp") or 0) * 1_000_000,
    )


def make_exchange(venue: str, api_key: str, secret: str, *, testnet: bool, **config: Any) -> Any:
    import ccxt.async_support as ccxt_async

    spec = VENUES[venue]
    cls = getattr(ccxt_async, spec["ccxt"])
    ex = cls({
        "apiKey": api_key,
        "secret": secret,
        "enableRateLimit": True,
        "options": {
            "defaultType": spec["defaultType"],
            "adjustForTimeDifference": False,
            "fetchMarkets": {"types": list(spec["types"])},  # only the markets Titan trades there
        },
        **config,
    })
    ex.has["fetchCurrencies"] = False  # not needed to trade; saves authenticated calls at start
    ex.number = str  # ccxt parses amounts, prices and fees as decimal strings, never floats
    if testnet:
        ex.set_sandbox_mode(True)
    return ex


class LiveVenue:
    """Places, cancels and follows orders on one ccxt exchange; feeds reports into the engine."""

    def __init__(self, venue: str, exchange: Any, *, poll_interval_s: float = 1.0) -> None:
        if venue not in VENUES:
            raise ValueError(f"live venue {venue!r} is not supported (bybit, binance)")
        self.venue = venue
        self.exchange = exchange
        self.poll_interval_s = poll_interval_s
        self.engine: Engine | None = None
        self._emit: Callable[..., None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._trades_since: dict[str, int] = {}
        self.errors = 0
        self.unknown_grace_ns = 30 * 1_000_000_000

    @classmethod
    def from_settings(cls, settings: Any) -> LiveVenue:
        ex = make_exchange(
            settings.venue,
            settings.api_key.get_secret_value(),
            settings.api_secret.get_secret_value(),
            testnet=settings.testnet,
        )
        return cls(settings.venue, ex)

    # --- life cycle ----------------------------------------------------------------------------
    async def start(self, engine: Engine, emit: Callable[..., None], *, poll: bool = True) -> None:
        self.engine = engine
        self._emit = emit
        await self.exchange.load_markets()
        if poll:
            self._poller = asyncio.create_task(self._poll_forever(), name=f"live-poll-{self.venue}")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for t in list(self._tasks):
            t.cancel()
        with contextlib.suppress(Exception):
            await self.exchange.close()

    # --- engine -> venue -----------------------------------------------------------------------
    def dispatch(self, submissions: list[ManagedOrder], cancels: list[ManagedOrder]) -> None:
        for order in submissions:
            self._spawn(self.submit(order))
        for order in cancels:
            self._spawn(self.cancel(order))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _apply(self, reports: list[VenueReport]) -> None:
        assert self.engine is not None
        updates: list[Update] = []
        for r in reports:
            updates.extend(self.engine.on_venue_report(r))
        if updates and self._emit is not None:
            self._emit(updates)

    async def submit(self, order: ManagedOrder) -> None:
        import ccxt

        symbol = ccxt_symbol(order.symbol, order.instrument)
        otype = "market" if order.order_type == trading_pb2.OrderType.ORDER_TYPE_MARKET else "limit"
        side = "buy" if order.is_buy else "sell"
        params: dict[str, Any] = {"clientOrderId": order.client_order_id}
        if order.reduce_only and order.instrument == PERP:
            params["reduceOnly"] = True
        if order.order_type == trading_pb2.OrderType.ORDER_TYPE_POST_ONLY:
            params["postOnly"] = True
        elif order.order_type == trading_pb2.OrderType.ORDER_TYPE_IOC:
            params["timeInForce"] = "IOC"
        price = None if order.price is None else str(order.price)
        try:
            data = await self.exchange.create_order(symbol, otype, side, str(order.quantity), price, params)
        except (ccxt.InvalidOrder, ccxt.InsufficientFunds, ccxt.BadRequest, ccxt.PermissionDenied) as exc:
            self._apply([VenueReport(order.client_order_id, "rejected", reason=f"{type(exc).__name__}: {exc}"[:200])])
            return
        except Exception as exc:  # network trouble: the venue may or may not have it -> reconcile by id
            self.errors += 1
            log.warning("placing %s failed (%s); will reconcile", order.client_order_id, type(exc).__name__)
            return
        reports = order_reports(order, data)
        self._apply(reports)
        for trade in data.get("trades") or []:
            self._apply([trade_report(order, trade)])

    async def cancel(self, order: ManagedOrder) -> None:
        symbol = ccxt_symbol(order.symbol, order.instrument)
        try:
            if order.venue_order_id:
                await self.exchange.cancel_order(order.venue_order_id, symbol)
            else:  # not acknowledged yet: by our client order id, in the venue's own parameter
                key = "orderLinkId" if self.venue == "bybit" else "clientOrderId"
                await self.exchange.cancel_order(None, symbol, {key: order.client_order_id})
        except Exception as exc:
            log.warning("cancel %s failed (%s); asked again at the next tick", order.client_order_id, exc)
            if self.engine is not None:
                self.engine.cancel_requested.discard(order.client_order_id)
            return
        # Fills may have happened before the cancel: take the venue's full view (trades, then status)
        # instead of marking the order canceled ourselves.
        await self.reconcile_order(order)

    # --- venue -> engine -----------------------------------------------------------------------
    async def reconcile(self, engine: Engine | None = None) -> int:
        """Ask the venue about every open order of this venue and its trades; returns reports applied."""
        engine = engine or self.engine
        assert engine is not None
        self.engine = engine
        applied = 0
        for order in [o for o in engine.orders.values() if o.is_open and o.venue == self.venue]:
            applied += await self.reconcile_order(order)
        return applied

    async def reconcile_order(self, order: ManagedOrder) -> int:
        """Apply the venue's view of one order: its trades first (an order may be 'closed' = fully
        filled, or canceled after partial fills), then its status."""
        engine = self.engine
        assert engine is not None
        symbol = ccxt_symbol(order.symbol, order.instrument)
        try:
            data = await self._fetch_order(order, symbol)
        except Exception as exc:
            log.warning("fetching %s failed: %s", order.client_order_id, exc)
            return 0
        if data is None:
            # The venue does not know it. Right after a failed placement that may be lag; once the
            # grace period is over the placement never reached the venue.
            if engine.clock.now_ns() - order.created_at_ns < self.unknown_grace_ns:
                return 0
            self._apply([VenueReport(order.client_order_id, "rejected", reason="unknown to the venue")])
            return 1
        reports = order_reports(order, data)
        vid = str(data.get("id") or "")
        trades = await self._trades_for(symbol, vid)
        fills = [trade_report(order, t) for t in trades]
        self._apply([reports[0], *fills, *reports[1:]])
        if order.state == order_states.ACCEPTED and data.get("status") == "closed" and not fills:
            log.warning("order %s closed without trades visible yet", order.client_order_id)
        return len(reports) + len(fills)

    async def _fetch_order(self, order: ManagedOrder, symbol: str) -> dict[str, Any] | None:
        """The venue's view of ``order``: by venue order id when known, else by our client order id."""
        ex = self.exchange
        if order.venue_order_id:
            params = {"acknowledged": True} if self.venue == "bybit" else {}
            return dict(await ex.fetch_order(order.venue_order_id, symbol, params))
        cid = order.client_order_id
        if self.venue == "bybit":
            for fetch in (ex.fetch_open_orders, ex.fetch_closed_orders, ex.fetch_canceled_orders):
                for data in await fetch(symbol, None, None, {"orderLinkId": cid}):
                    if data.get("clientOrderId") == cid:
                        return dict(data)
            return None
        import ccxt

        try:
            return dict(await ex.fetch_order(None, symbol, {"clientOrderId": cid}))
        except ccxt.OrderNotFound:
            return None

    async def _trades_for(self, symbol: str, venue_order_id: str) -> list[dict[str, Any]]:
        if not venue_order_id:
            return []
        try:
            trades = await self.exchange.fetch_my_trades(symbol, None, None, {"orderId": venue_order_id})
        except Exception as exc:
            log.warning("fetching trades of %s failed: %s", venue_order_id, exc)
            return []
        return [t for t in trades if str(t.get("order") or "") == venue_order_id]

    async def _poll_forever(self) -> None:
        import ccxt

        backoff = self.poll_interval_s
        while True:
            await asyncio.sleep(backoff)
            try:
                await self.reconcile()
                backoff = self.poll_interval_s
            except (ccxt.RateLimitExceeded, ccxt.DDoSProtection):
                backoff = min(backoff * 2, 60.0)
                log.warning("rate limited by %s; polling every %.0fs", self.venue, backoff)
            except Exception:
                log.exception("polling %s failed", self.venue)
