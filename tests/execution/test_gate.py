"""Each risk-gate rule rejects with its own reason; the first failing rule wins; metrics count it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from tests.execution.helpers import (
    CLOSE,
    KEY,
    MODE,
    OTHER_KEY,
    PERP,
    REDUCE,
    SELL,
    SPOT,
    T0,
    OrderType,
    PhaseState,
    RejectReason,
    budget,
    leg,
    make_engine,
    mark,
    signal,
    top,
    trading_state,
)
from titan.core.signing import sign_signal
from titan.execution.engine import reason_label


def rejects(reason: int) -> float:
    return REGISTRY.get_sample_value("titan_execution_rejects_total", {"reason": reason_label(reason)}) or 0.0


def test_accepts_a_valid_signal_and_creates_one_order_per_leg():
    engine, clock = make_engine()
    d = engine.on_signal(signal(clock, leg(size="1000")))
    assert d.ack.accepted, d.ack.detail
    assert d.ack.reason == RejectReason.REJECT_REASON_UNSPECIFIED
    assert len(d.ack.client_order_ids) == 1
    assert d.ack.client_order_ids[0] in engine.orders


def _check(engine, sig, reason):
    before = rejects(reason)
    d = engine.on_signal(sig)
    assert not d.ack.accepted
    assert d.ack.reason == reason, (RejectReason.Name(d.ack.reason), d.ack.detail)
    assert rejects(reason) == before + 1
    assert not d.ack.client_order_ids or reason == RejectReason.REJECT_REASON_REPLAYED
    return d


def test_unknown_phase():
    engine, clock = make_engine()
    _check(engine, signal(clock, phase="ghost"), RejectReason.REJECT_REASON_UNKNOWN_PHASE)


def test_unsigned_tampered_and_wrong_key_are_bad_signatures():
    engine, clock = make_engine()
    _check(engine, signal(clock, key=None), RejectReason.REJECT_REASON_BAD_SIGNATURE)
    tampered = signal(clock, leg(size="1000"))
    tampered.legs[0].size_quote = "9000"
    _check(engine, tampered, RejectReason.REJECT_REASON_BAD_SIGNATURE)
    _check(engine, signal(clock, key=OTHER_KEY), RejectReason.REJECT_REASON_BAD_SIGNATURE)
    truncated = signal(clock)
    truncated.signature = truncated.signature[:16]
    _check(engine, truncated, RejectReason.REJECT_REASON_BAD_SIGNATURE)
    assert not engine.orders


def test_outside_replay_window_is_stale_both_ways():
    engine, clock = make_engine()
    window = engine.config.gate.replay_window_ns
    _check(engine, signal(clock, created_at_ns=T0 - window - 1), RejectReason.REJECT_REASON_STALE)
    _check(engine, signal(clock, created_at_ns=T0 + window + 1), RejectReason.REJECT_REASON_STALE)
    assert engine.on_signal(signal(clock, created_at_ns=T0 - window)).ack.accepted


def test_same_signal_twice_gives_one_order_and_the_original_ids():
    engine, clock = make_engine()
    sig = signal(clock)
    first = engine.on_signal(sig)
    assert first.ack.accepted
    d = _check(engine, sig, RejectReason.REJECT_REASON_REPLAYED)
    assert list(d.ack.client_order_ids) == list(first.ack.client_order_ids)
    assert len(engine.orders) == 1
    # the same id re-signed with a new timestamp is still the same decision
    again = signal(clock, signal_id=sig.signal_id, created_at_ns=T0 + 1)
    _check(engine, again, RejectReason.REJECT_REASON_REPLAYED)
    assert len(engine.orders) == 1
    assert not d.updates


def test_same_id_after_the_dedup_horizon_still_maps_onto_the_existing_order():
    engine, clock = make_engine()
    sig = signal(clock, signal_id="long-lived")
    assert engine.on_signal(sig).ack.accepted
    clock.advance(engine.config.dedup_horizon_ns + 1)
    engine.on_market(top("50000", "10", "50000", "10"))
    engine.on_market(mark("50000"))
    engine.tick()
    assert ("hunter", "long-lived") not in engine.gate.seen
    d = engine.on_signal(signal(clock, signal_id="long-lived"))
    assert d.ack.reason == RejectReason.REJECT_REASON_REPLAYED
    assert len([o for o in engine.orders.values() if o.signal_id == "long-lived"]) == 1


def test_rejected_signal_id_is_decided_once():
    engine, clock = make_engine()
    sig = signal(clock, leg(symbol="DOGEUSDT"))
    _check(engine, sig, RejectReason.REJECT_REASON_SYMBOL_NOT_ALLOWED)
    _check(engine, sig, RejectReason.REJECT_REASON_REPLAYED)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.ClearField("legs"),
        lambda s: setattr(s, "signal_id", ""),
        lambda s: setattr(s, "signal_id", "has space"),
        lambda s: setattr(s, "intent", 0),
        lambda s: setattr(s, "confidence", 1.5),
        lambda s: setattr(s, "confidence", float("nan")),
        lambda s: setattr(s, "leverage", "abc"),
        lambda s: setattr(s, "leverage", "0.5"),
        lambda s: setattr(s, "ttl_ms", -1),
        lambda s: setattr(s.legs[0], "size_quote", "-5"),
        lambda s: setattr(s.legs[0], "size_quote", "NaN"),
        lambda s: setattr(s.legs[0], "size_quote", ""),
        lambda s: setattr(s.legs[0], "size_quote", "1e40"),
        lambda s: setattr(s.legs[0], "symbol", "BTC.USDT"),
        lambda s: setattr(s.legs[0], "side", 0),
        lambda s: setattr(s.legs[0], "instrument", 0),
        lambda s: setattr(s.legs[0], "order_type", OrderType.ORDER_TYPE_LIMIT),  # no limit price
        lambda s: s.legs.append(s.legs[0]),  # same instrument twice
        lambda s: s.legs.extend([s.legs[0]] * 5),  # too many legs
        lambda s: s.target_prices.append("-1"),
        lambda s: setattr(s, "stop_price", "x"),
    ],
)
def test_malformed(mutate):
    engine, clock = make_engine()
    sig = signal(clock, key=None)
    mutate(sig)
    sign_signal(sig, KEY)
    _check(engine, sig, RejectReason.REJECT_REASON_MALFORMED)


def test_spot_cannot_be_opened_short():
    engine, clock = make_engine()
    _check(engine, signal(clock, leg(side=SELL, instrument=SPOT)), RejectReason.REJECT_REASON_MALFORMED)


def test_below_one_lot_is_malformed():
    engine, clock = make_engine()
    _check(engine, signal(clock, leg(size="0.00001")), RejectReason.REJECT_REASON_MALFORMED)


def test_ttl_expired():
    engine, clock = make_engine()
    sig = signal(clock, ttl_ms=1)
    clock.advance(2_000_000)
    _check(engine, sig, RejectReason.REJECT_REASON_TTL_EXPIRED)


def _open_long(engine, clock, size="10000"):
    d = engine.on_signal(signal(clock, leg(size=size)))
    assert d.ack.accepted, d.ack.detail


def test_halted_rejects_everything_including_reductions():
    engine, clock = make_engine()
    _open_long(engine, clock)
    engine.set_trading_state(trading_state(MODE.TRADING_MODE_HALTED, 2))
    _check(engine, signal(clock), RejectReason.REJECT_REASON_HALTED)
    _check(engine, signal(clock, leg(side=SELL), intent=CLOSE), RejectReason.REJECT_REASON_HALTED)


def test_unknown_trading_state_fails_closed():
    engine, clock = make_engine(mode=MODE.TRADING_MODE_UNSPECIFIED)
    _check(engine, signal(clock), RejectReason.REJECT_REASON_HALTED)


def test_reducing_rejects_an_increase_and_accepts_a_decrease():
    engine, clock = make_engine()
    _open_long(engine, clock)
    engine.set_trading_state(trading_state(MODE.TRADING_MODE_REDUCING, 2))
    _check(engine, signal(clock, leg(size="1000")), RejectReason.REJECT_REASON_REDUCE_ONLY)
    d = engine.on_signal(signal(clock, leg(side=SELL, size="5000"), intent=REDUCE))
    assert d.ack.accepted, d.ack.detail
    assert engine.portfolio.quantity(("hunter", "bybit", "BTCUSDT", PERP)) == Decimal("0.1")


def test_close_or_reduce_without_opposite_position():
    engine, clock = make_engine()
    _check(engine, signal(clock, leg(side=SELL), intent=CLOSE), RejectReason.REJECT_REASON_NOTHING_TO_REDUCE)
    _open_long(engine, clock)
    # a "reduce" on the same side as the position would add: refused
    _check(engine, signal(clock, leg(), intent=REDUCE), RejectReason.REJECT_REASON_NOTHING_TO_REDUCE)


def test_no_budget_allows_only_reduction():
    engine, clock = make_engine()
    _open_long(engine, clock)
    engine.gate.budgets.clear()
    _check(engine, signal(clock), RejectReason.REJECT_REASON_NO_BUDGET)
    d = engine.on_signal(signal(clock, leg(side=SELL, size=""), intent=CLOSE))
    assert d.ack.accepted, d.ack.detail
    assert engine.portfolio.quantity(("hunter", "bybit", "BTCUSDT", PERP)) == 0


def test_expired_budget_allows_only_reduction():
    engine, clock = make_engine()
    _open_long(engine, clock)
    engine.update_budget(budget(version=2, expires_at_ns=T0 + 1))
    clock.advance(1)
    _check(engine, signal(clock), RejectReason.REJECT_REASON_BUDGET_EXPIRED)
    assert engine.on_signal(signal(clock, leg(side=SELL, size="1000"), intent=REDUCE)).ack.accepted


@pytest.mark.parametrize(
    "change", [{"state": PhaseState.PHASE_STATE_THROTTLED}, {"state": PhaseState.PHASE_STATE_DORMANT}, {"weight": "0"}]
)
def test_phase_blocked(change):
    engine, clock = make_engine()
    engine.update_budget(budget(version=2, **change))
    _check(engine, signal(clock), RejectReason.REJECT_REASON_PHASE_BLOCKED)


def test_symbol_not_allowed():
    engine, clock = make_engine()
    _check(engine, signal(clock, leg(symbol="SOLUSDT")), RejectReason.REJECT_REASON_SYMBOL_NOT_ALLOWED)


def test_market_data_missing_or_stale():
    engine, clock = make_engine(book=False)
    _check(engine, signal(clock), RejectReason.REJECT_REASON_MARKET_DATA_STALE)
    engine.on_market(top("50000", "1", "50001", "1"))
    clock.advance(engine.config.gate.market_data_max_age_ns + 1)
    _check(engine, signal(clock), RejectReason.REJECT_REASON_MARKET_DATA_STALE)


def test_price_band():
    engine, clock = make_engine()
    far = leg(order_type=OrderType.ORDER_TYPE_LIMIT, limit="45000")
    _check(engine, signal(clock, far), RejectReason.REJECT_REASON_PRICE_BAND)
    near = leg(order_type=OrderType.ORDER_TYPE_LIMIT, limit="49500")
    assert engine.on_signal(signal(clock, near)).ack.accepted


def test_order_notional():
    engine, clock = make_engine()
    _check(engine, signal(clock, leg(size="60001")), RejectReason.REJECT_REASON_ORDER_NOTIONAL)


def test_phase_notional_counts_positions_and_open_orders():
    engine, clock = make_engine()
    _open_long(engine, clock, size="50000")
    resting = leg(order_type=OrderType.ORDER_TYPE_LIMIT, limit="49500", size="40000")
    assert engine.on_signal(signal(clock, resting)).ack.accepted
    _check(engine, signal(clock, leg(size="10001")), RejectReason.REJECT_REASON_PHASE_NOTIONAL)
    assert engine.on_signal(signal(clock, leg(size="9000"))).ack.accepted


def test_leverage():
    engine, clock = make_engine()
    _check(engine, signal(clock, leverage="11"), RejectReason.REJECT_REASON_LEVERAGE)
    assert engine.on_signal(signal(clock, leverage="10")).ack.accepted


def test_open_orders_per_symbol():
    engine, clock = make_engine()
    engine.update_budget(budget(version=2, max_open_orders_per_symbol=2))
    resting = lambda: signal(clock, leg(order_type=OrderType.ORDER_TYPE_LIMIT, limit="49900", size="100"))  # noqa: E731
    assert engine.on_signal(resting()).ack.accepted
    assert engine.on_signal(resting()).ack.accepted
    _check(engine, resting(), RejectReason.REJECT_REASON_OPEN_ORDERS)


def test_order_rate_sliding_minute():
    engine, clock = make_engine()
    engine.update_budget(budget(version=2, max_orders_per_minute=2))
    assert engine.on_signal(signal(clock)).ack.accepted
    assert engine.on_signal(signal(clock)).ack.accepted
    _check(engine, signal(clock), RejectReason.REJECT_REASON_ORDER_RATE)
    clock.advance(60 * 10**9 + 1)
    engine.on_market(top("50000", "10", "50000", "10"))
    engine.on_market(mark("50000"))
    assert engine.on_signal(signal(clock)).ack.accepted


def test_daily_loss():
    engine, clock = make_engine()
    _open_long(engine, clock, size="50000")  # 1 BTC at 50000
    engine.on_market(mark("48900"))           # unrealized -1100, fees 27.5 -> daily pnl below -1000
    _check(engine, signal(clock, leg(size="100")), RejectReason.REJECT_REASON_DAILY_LOSS)
    assert engine.on_signal(signal(clock, leg(side=SELL, size="1000"), intent=REDUCE)).ack.accepted


def test_first_failing_rule_wins():
    engine, clock = make_engine()
    engine.set_trading_state(trading_state(MODE.TRADING_MODE_HALTED, 2))
    bad_symbol_unsigned = signal(clock, leg(symbol="SOLUSDT"), key=None)
    _check(engine, bad_symbol_unsigned, RejectReason.REJECT_REASON_BAD_SIGNATURE)
    _check(engine, signal(clock, leg(symbol="SOLUSDT")), RejectReason.REJECT_REASON_HALTED)
    engine.set_trading_state(trading_state(MODE.TRADING_MODE_ACTIVE, 3))
    engine.gate.budgets.clear()
    _check(engine, signal(clock, leg(symbol="SOLUSDT", size="1e9")), RejectReason.REJECT_REASON_NO_BUDGET)


def test_multi_leg_is_one_unit():
    engine, clock = make_engine()
    engine.on_market(top("50000", "10", "50000", "10", venue="binance", instrument=SPOT))
    spot = leg(venue="binance", instrument=SPOT, size="10000")
    perp = leg(side=SELL, size="10000")
    d = engine.on_signal(signal(clock, spot, perp))
    assert d.ack.accepted, d.ack.detail
    assert len(d.ack.client_order_ids) == 2
    assert engine.portfolio.quantity(("hunter", "binance", "BTCUSDT", SPOT)) == Decimal("0.2")
    assert engine.portfolio.quantity(("hunter", "bybit", "BTCUSDT", PERP)) == Decimal("-0.2")
    # one bad leg rejects the whole intent: no order for the good leg
    n = len(engine.orders)
    bad = leg(venue="binance", instrument=SPOT, size="10000", symbol="SOLUSDT")
    _check(engine, signal(clock, leg(size="10000"), bad), RejectReason.REJECT_REASON_SYMBOL_NOT_ALLOWED)
    assert len(engine.orders) == n


def test_budget_and_trading_state_newer_version_wins():
    engine, _ = make_engine()
    assert engine.update_budget(budget(version=5, max_notional="1")) == "applied"
    assert engine.update_budget(budget(version=4, max_notional="999999")) == "stale"
    assert engine.update_budget(budget(version=5, max_notional="999999")) == "stale"
    assert engine.update_budget(budget(version=6, max_notional="-1")) == "invalid"
    assert engine.gate.budgets["hunter"].max_notional == 1
    applied, _, _ = engine.set_trading_state(trading_state(MODE.TRADING_MODE_HALTED, 7))
    assert applied
    applied, _, _ = engine.set_trading_state(trading_state(MODE.TRADING_MODE_ACTIVE, 6))
    assert not applied
    assert engine.gate.trading_mode == MODE.TRADING_MODE_HALTED


def test_halting_cancels_open_orders():
    engine, clock = make_engine()
    d = engine.on_signal(signal(clock, leg(order_type=OrderType.ORDER_TYPE_LIMIT, limit="49900", size="100")))
    cid = d.ack.client_order_ids[0]
    assert engine.orders[cid].is_open
    _, updates, _ = engine.set_trading_state(trading_state(MODE.TRADING_MODE_HALTED, 2))
    assert not engine.orders[cid].is_open
    assert any(getattr(u, "client_order_id", "") == cid and u.state == 6 for u in updates)  # CANCELED
    assert engine.open_book.count("hunter", "BTCUSDT") == 0
