"""The real google-genai client against a local generateContent stand-in: what is sent, and that no
bad answer (malformed JSON, out-of-bound values, a refusal, an empty answer, 429s, 5xx, a timeout)
ever gets past the guardrails — the organism's params file stays byte-for-byte the same."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.quant.gemini_server import (
    GeminiStandIn,
    blocked_prompt_reply,
    empty_reply,
    error_reply,
    json_reply,
    refusal_reply,
    serve,
    text_reply,
)
from tests.quant.synthetic import T0, days, regime_evaluator
from titan.phases.ai_quant.gemini import GeminiProposer, MissingApiKey
from titan.phases.ai_quant.params import AiQuantParams, tunable_space
from titan.phases.ai_quant.strategy import PerformanceSummary, ReasonCode
from titan.quant.apply import FileTarget
from titan.quant.proposals import QuantJob, Source, propose_with_model
from titan.quant.walkforward import cached, plan_folds

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"
CONFIG = AiQuantParams(model="gemini-test", temperature=0.1, seed=42, max_attempts=3, retry_initial_delay_s=0.01,
                       retry_max_delay_s=0.02, request_timeout_s=1.0, folds=3, min_improved_folds=2,
                       max_drawdown_worsening=0.5)


def full_answer(**changes: float) -> dict[str, object]:
    current = {k: float(v) for k, v in tunable_space("scavenger").current({}).items()}
    return {"params": {**current, "stopLossPercent": 0.01, **changes}, "rationale": "stops too tight at 03h"}


@pytest.fixture
def organism(tmp_path: Path) -> Path:
    target = tmp_path / "organism"
    shutil.copytree(SAMPLES, target)
    return target


def job_for(organism: Path) -> QuantJob:
    target = FileTarget(organism, "scavenger")
    return QuantJob("scavenger", tunable_space("scavenger"), target.read(), CONFIG,
                    plan_folds(T0, T0 + days(30), 3, 0.6), cached(regime_evaluator(lambda day: 0.013)))


def ask(stand_in: GeminiStandIn, organism: Path, rounds: int = 1) -> list:  # type: ignore[type-arg]
    proposer = GeminiProposer("test-key", CONFIG, base_url=stand_in.base_url)
    try:
        return propose_with_model(job_for(organism), proposer, PerformanceSummary(0, 0, 0, 0), [], rounds=rounds,
                                  now_ns=T0)
    finally:
        proposer.close()


def test_request_shape_and_a_good_answer_is_validated(organism: Path) -> None:
    with serve(GeminiStandIn().then(json_reply(full_answer(stopLossPercent=0.013, targetPercent=0.039)))) as s:
        [outcome] = ask(s, organism)
    request = s.requests[0]
    assert request["path"] == "/v1beta/models/gemini-test:generateContent"       # API version pinned
    assert request["headers"]["x-goog-api-key"] == "test-key"
    generation = request["body"]["generationConfig"]
    assert generation["temperature"] == 0.1 and generation["seed"] == 42
    assert generation["responseMimeType"] == "application/json"
    props = generation["responseSchema"]["properties"]["params"]["properties"]
    assert set(props) == {t.key for t in tunable_space("scavenger").fields}
    assert props["stopLossPercent"]["minimum"] == 0.001 and props["stopLossPercent"]["maximum"] == 0.1
    assert "stopLossPercent [0.001, 0.1] = 0.01" in request["body"]["contents"][0]["parts"][0]["text"]
    assert outcome.source is Source.GEMINI and outcome.call.total_tokens == 160
    assert not outcome.call.parsed_none
    assert outcome.accepted, outcome.detail                         # the market's best stop is 1.3%
    assert outcome.verdict.improved_folds >= 2


BAD_ANSWERS = [
    pytest.param([text_reply('{"params": {"stopLossPercent": 0.013,')], ReasonCode.MALFORMED_JSON, 1, id="malformed"),
    pytest.param([text_reply('{"params": {"stopLossPercent": 0.0', finish="MAX_TOKENS")], ReasonCode.TRUNCATED, 1,
                 id="truncated"),
    pytest.param([json_reply(full_answer(stopLossPercent=0.5))], ReasonCode.OUT_OF_BOUNDS, 1, id="out-of-bounds"),
    pytest.param([json_reply(full_answer(maxLeverage=100))], ReasonCode.RISK_FIELD, 1, id="risk-field"),
    pytest.param([json_reply({"params": {"stopLossPercent": 0.012}})], ReasonCode.SCHEMA_MISMATCH, 1,
                 id="no-rationale"),
    pytest.param([refusal_reply()], ReasonCode.REFUSED, 1, id="refusal"),
    pytest.param([blocked_prompt_reply()], ReasonCode.REFUSED, 1, id="blocked-prompt"),
    pytest.param([empty_reply()], ReasonCode.EMPTY_ANSWER, 1, id="no-candidates"),
    pytest.param([error_reply(429)] * 3, ReasonCode.RATE_LIMITED, 3, id="429-retries-exhausted"),
    pytest.param([error_reply(503)] * 3, ReasonCode.SERVER_ERROR, 3, id="5xx-retries-exhausted"),
    pytest.param([error_reply(403, "API key not valid")], ReasonCode.CLIENT_ERROR, 1, id="bad-key-not-retried"),
]


@pytest.mark.parametrize(("replies", "reason", "requests"), BAD_ANSWERS)
def test_bad_answers_are_rejected_with_a_reason_and_never_change_params(
    organism: Path, replies: list, reason: ReasonCode, requests: int  # type: ignore[type-arg]
) -> None:
    phase_file = organism / "titanphase-scavenger.yaml"
    before = phase_file.read_bytes()
    with serve(GeminiStandIn().then(*replies)) as s:
        [outcome] = ask(s, organism)
    assert outcome.reason is reason, outcome.detail
    assert not outcome.accepted and outcome.verdict is None         # nothing was even backtested
    assert len(s.requests) == requests                              # retries bounded by maxAttempts
    assert phase_file.read_bytes() == before


def test_parsed_none_is_detected_and_recorded(organism: Path) -> None:
    # Valid JSON, passes our per-field checks, but misses fields the schema requires: the SDK's
    # parsed is None (silently); the outcome records it and is not trusted.
    with serve(GeminiStandIn().then(json_reply({"params": {"stopLossPercent": 0.012}, "rationale": "r"}))) as s:
        [outcome] = ask(s, organism)
    assert outcome.call.parsed_none
    assert outcome.reason is ReasonCode.SCHEMA_MISMATCH and "SDK" in outcome.detail


def test_a_429_then_an_answer_is_retried_and_used(organism: Path) -> None:
    with serve(GeminiStandIn().then(error_reply(429), error_reply(500),
                                    json_reply(full_answer(stopLossPercent=0.013)))) as s:
        [outcome] = ask(s, organism)
    assert len(s.requests) == 3
    assert outcome.call.reason is None and outcome.guardrail is not None and outcome.guardrail.passed


def test_a_timeout_is_a_rejection(organism: Path) -> None:
    slow = json_reply(full_answer(stopLossPercent=0.013))
    slow = type(slow)(slow.status, slow.body, delay_s=30)
    with serve(GeminiStandIn().then(slow, slow, slow)) as s:
        [outcome] = ask(s, organism)
    assert outcome.reason is ReasonCode.TIMEOUT, outcome.detail


def test_rounds_tell_the_model_what_earlier_candidates_scored(organism: Path) -> None:
    with serve(GeminiStandIn().then(json_reply(full_answer(stopLossPercent=0.012)),
                                    json_reply(full_answer(stopLossPercent=0.013)))) as s:
        outcomes = ask(s, organism, rounds=2)
    assert len(outcomes) == 2
    second_prompt = s.requests[1]["body"]["contents"][0]["parts"][0]["text"]
    assert "stopLossPercent=0.012: in-sample sharpe" in second_prompt


def test_no_api_key_is_a_clear_message() -> None:
    with pytest.raises(MissingApiKey, match=r"TITAN_GEMINI_API_KEY.*--search optuna"):
        GeminiProposer("", CONFIG)
