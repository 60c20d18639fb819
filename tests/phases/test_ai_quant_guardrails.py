"""The AI Quant's tunable space, response schema, guardrails and losing-trade miner (pure)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from titan.phases.ai_quant import params as quant_params
from titan.phases.ai_quant.params import RISK_FIELDS, TunableError, response_model, tunable_space
from titan.phases.ai_quant.strategy import (
    PerformanceSummary,
    ReasonCode,
    TradeOutcome,
    build_prompt,
    check_proposal,
    decode_answer,
    mine_losing_patterns,
)
from titan.phases.scavenger.params import ScavengerParams

SPACE = tunable_space("scavenger")
CURRENT = {"symbols": ["BTCUSDT"], "stopLossPercent": 0.01, "targetPercent": 0.03, "minTradesInWindow": 50}


def test_schema_is_exactly_the_tunable_fields_with_the_models_bounds() -> None:
    schema = response_model(SPACE).model_json_schema()
    props = schema["$defs"][schema["properties"]["params"]["$ref"].split("/")[-1]]["properties"]
    whitelist = quant_params.TUNABLE_FIELDS["scavenger"][1]
    assert set(props) == {ScavengerParams.model_fields[n].alias for n in whitelist}
    assert set(schema["required"]) == {"params", "rationale"}
    phase_schema = ScavengerParams.model_json_schema(by_alias=True)["properties"]   # the phase's own bounds
    for name in whitelist:
        info = ScavengerParams.model_fields[name]
        own, prop = phase_schema[info.alias], props[info.alias]
        own = next(a for a in own.get("anyOf", [own]) if a.get("type") in ("number", "integer"))  # Decimal: anyOf
        assert prop["minimum"] == float(own.get("minimum", own.get("exclusiveMinimum")))
        assert prop["maximum"] == float(own["maximum"])
        assert prop["type"] == ("integer" if info.annotation is int else "number")
    assert "must be greater than 0" in props["proximity"]["description"]      # Gt sent as a described minimum
    assert not set(props) & {ScavengerParams.model_fields[n].alias for n in RISK_FIELDS}


def test_risk_fields_and_unbounded_fields_cannot_be_whitelisted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(quant_params.TUNABLE_FIELDS, "bad", (ScavengerParams, ("max_leverage",)))  # type: ignore[index]
    with pytest.raises(TunableError, match="risk policy"):
        tunable_space("bad")
    monkeypatch.setitem(quant_params.TUNABLE_FIELDS, "bad", (ScavengerParams, ("basis_min_volume",)))  # type: ignore[index]
    with pytest.raises(TunableError, match="bounded on both sides"):
        tunable_space("bad")
    with pytest.raises(TunableError, match="no tunable fields"):
        tunable_space("hunter")


def answer(**changes: object) -> dict[str, object]:
    return {"params": changes, "rationale": "losses cluster at 03h UTC"}


@pytest.mark.parametrize(("proposal", "reason", "detail"), [
    ("not json", ReasonCode.SCHEMA_MISMATCH, "'params' object"),
    ({"params": {"stopLossPercent": 0.012}}, ReasonCode.SCHEMA_MISMATCH, "rationale"),
    (answer(maxLeverage=50), ReasonCode.RISK_FIELD, "maxLeverage"),
    (answer(maxPositionSizePercent=0.9), ReasonCode.RISK_FIELD, "risk policy"),
    (answer(venue="binance"), ReasonCode.NOT_WHITELISTED, "venue"),
    (answer(leverage=3), ReasonCode.NOT_WHITELISTED, "leverage"),
    (answer(stopLossPercent="0.012"), ReasonCode.WRONG_TYPE, "stopLossPercent"),
    (answer(minTradesInWindow=50.5), ReasonCode.WRONG_TYPE, "int"),
    (answer(minTradesInWindow=True), ReasonCode.WRONG_TYPE, "minTradesInWindow"),
    (answer(stopLossPercent=float("nan")), ReasonCode.WRONG_TYPE, "stopLossPercent"),
    (answer(stopLossPercent=0.2), ReasonCode.OUT_OF_BOUNDS, "outside [0.001, 0.1]"),
    (answer(proximity=0.0), ReasonCode.OUT_OF_BOUNDS, "outside (0, 0.05]"),
    (answer(stopLossPercent=0.016), ReasonCode.STEP_TOO_LARGE, "0.01 -> 0.016"),
    (answer(stopLossPercent=0.01, minTradesInWindow=50), ReasonCode.NO_CHANGE, "repeats"),
    (answer(moderateVelocityThreshold=0.0012, extremeVelocityThreshold=0.0011), ReasonCode.STEP_TOO_LARGE,
     "extremeVelocityThreshold"),
])
def test_each_guardrail_rejects_with_its_reason(proposal: object, reason: ReasonCode, detail: str) -> None:
    verdict = check_proposal(SPACE, CURRENT, proposal, max_relative_step=0.5)
    assert verdict.reason is reason
    assert detail in verdict.detail
    assert not verdict.passed and verdict.params == {}


def test_a_combination_the_phase_refuses_is_rejected() -> None:
    current = {**CURRENT, "extremeVelocityThreshold": 0.002, "moderateVelocityThreshold": 0.0015}
    verdict = check_proposal(SPACE, current, answer(moderateVelocityThreshold=0.0021), max_relative_step=0.5)
    assert verdict.reason is ReasonCode.INVALID_PARAMS
    assert "moderate_velocity_threshold" in verdict.detail


def test_a_passing_proposal_keeps_other_params_and_types() -> None:
    verdict = check_proposal(SPACE, CURRENT, answer(stopLossPercent=0.012, minTradesInWindow=60), 0.5)
    assert verdict.passed, verdict.detail
    assert verdict.params == {**CURRENT, "stopLossPercent": 0.012, "minTradesInWindow": 60}
    assert {c.key: c.new for c in verdict.changes} == {"stopLossPercent": Decimal("0.012"), "minTradesInWindow": 60}
    assert ScavengerParams.model_validate(verdict.params).stop_loss_percent == Decimal("0.012")


def test_decode_answer_tolerates_a_fence_and_names_bad_json() -> None:
    assert decode_answer('```json\n{"a": 1}\n```')[0] == {"a": 1}
    value, reason, detail = decode_answer('{"params": {"stopLossPercent": 0.01')
    assert value is None and reason is ReasonCode.MALFORMED_JSON and "not JSON" in detail


def _trade(hour: int, minute: int, symbol: str, pnl: str, setup: str = "OI_WIPEOUT") -> TradeOutcome:
    ts = (1_704_067_200 + hour * 3600 + minute * 60) * 1_000_000_000
    return TradeOutcome(ts, symbol, "SIDE_SELL", setup, Decimal(pnl), Decimal("0.1"))


def test_miner_finds_losing_hours_symbols_setups_and_streaks_deterministically() -> None:
    trades = [_trade(3, m, "SOLUSDT", "-2") for m in range(5)]                 # 03h: five losses in a row
    trades += [_trade(10, m, "BTCUSDT", "5", "BREAKOUT") for m in range(4)]     # 10h: winners
    trades += [_trade(11, 0, "SOLUSDT", "3", "BREAKOUT")]
    patterns = mine_losing_patterns(trades)
    keys = {(p.dimension, p.key) for p in patterns}
    assert ("hour", "03h UTC") in keys and ("setup", "OI_WIPEOUT") in keys and ("streak", "5") in keys
    assert ("symbol", "SOLUSDT") in keys                                         # 1 win in 6 < 35%
    assert ("hour", "10h UTC") not in keys and ("symbol", "BTCUSDT") not in keys
    assert mine_losing_patterns(list(reversed(trades))[::-1]) == patterns
    assert patterns[0].net_pnl <= patterns[-1].net_pnl
    prompt = build_prompt(SPACE, SPACE.current(CURRENT), PerformanceSummary.of(trades), patterns, 0.5)
    assert "hour 03h UTC: 5 trades, win rate 0%" in prompt
    assert "stopLossPercent [0.001, 0.1] = 0.01" in prompt and "within 50%" in prompt
    assert "maxLeverage" not in prompt
