"""Asking Gemini for a proposal through the maintained SDK, ``google-genai``.

One request per proposal: JSON out, the response schema generated from the phase's tunable fields,
temperature and seed set, the API version pinned, bounded retries of 429/5xx/timeouts by the SDK.
Every way the call can go wrong ends in a :class:`ModelCall` with a :class:`ReasonCode` — never an
exception to the caller — so a bad answer is recorded as a rejected proposal and never applied.

The SDK sets ``response.parsed`` to None *silently* when the answer does not validate against the
schema; :attr:`ModelCall.parsed_none` records that, and the raw text is still decoded so the
guardrails can name the offending field.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from titan.phases.ai_quant.params import AiQuantParams
from titan.phases.ai_quant.strategy import ReasonCode, decode_answer

SYSTEM_INSTRUCTION = (
    "You are a quantitative researcher tuning a trading strategy's parameters. You never place orders "
    "and never change risk limits. Answer with JSON matching the response schema only."
)
REFUSAL_FINISH_REASONS = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE", "OTHER",
})
RETRIED_STATUS_CODES = (408, 429, 500, 502, 503, 504)
HTTP_STACKS = frozenset({"httpx", "httpx2", "httpcore", "httpcore2", "aiohttp", "anyio"})


class MissingApiKey(RuntimeError):
    """No Gemini key configured (TITAN_GEMINI_API_KEY); the Optuna baseline still works without one."""

    def __init__(self) -> None:
        super().__init__(
            "no Gemini API key: set TITAN_GEMINI_API_KEY (in a cluster, the chart's aiQuant.apiKeySecret); "
            "`titan quant run --search optuna` works without one"
        )


@dataclass(frozen=True)
class ModelCall:
    """What one request gave: the decoded answer, or the reason there is none."""

    answer: Any
    reason: ReasonCode | None
    detail: str
    text: str = ""
    parsed_none: bool = False
    finish_reason: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    elapsed_s: float = 0.0


def _service_error(exc: Exception) -> bool:
    """An error of the service or the way to it (not a bug here): the SDK's APIError, or its HTTP
    stack's (httpx/httpcore, aiohttp) transport and timeout errors."""
    from google.genai import errors

    root = type(exc).__module__.split(".")[0]
    return isinstance(exc, errors.APIError | OSError | TimeoutError) or root in HTTP_STACKS


def _reason_for_error(exc: Exception) -> tuple[ReasonCode, str]:
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        detail = f"HTTP {exc.code} {exc.status or ''}: {exc.message or ''}".strip()
        if exc.code == 429:
            return ReasonCode.RATE_LIMITED, detail
        if exc.code == 408:
            return ReasonCode.TIMEOUT, detail
        if isinstance(exc, errors.ServerError) or exc.code >= 500:
            return ReasonCode.SERVER_ERROR, detail
        return ReasonCode.CLIENT_ERROR, detail
    name = type(exc).__name__
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return ReasonCode.TIMEOUT, f"{name}: {exc}"
    return ReasonCode.NETWORK_ERROR, f"{name}: {exc}"


class GeminiProposer:
    """A google-genai client configured from settings (key, base URL) and AiQuantParams."""

    def __init__(self, api_key: str, params: AiQuantParams, base_url: str = "") -> None:
        if not api_key:
            raise MissingApiKey()
        from google import genai
        from google.genai import types

        self.params = params
        retry = types.HttpRetryOptions(
            attempts=params.max_attempts,
            initial_delay=params.retry_initial_delay_s,
            max_delay=params.retry_max_delay_s,
            http_status_codes=list(RETRIED_STATUS_CODES),
        )
        http = types.HttpOptions(
            api_version=params.api_version,
            base_url=base_url or None,
            timeout=int(params.request_timeout_s * 1000),
            retry_options=retry,
        )
        self._client = genai.Client(api_key=api_key, http_options=http)

    def close(self) -> None:
        self._client.close()

    def config(self, schema: type[BaseModel]) -> Any:
        from google.genai import types

        return types.GenerateContentConfig(
            system_instruction=SYSTEM_INSTRUCTION,
            response_mime_type="application/json",
            response_schema=schema,
            temperature=self.params.temperature,
            seed=self.params.seed,
            max_output_tokens=self.params.max_output_tokens,
            candidate_count=1,
        )

    def ask(self, prompt: str, schema: type[BaseModel]) -> ModelCall:
        """One generateContent call; the outcome, never an exception (programming errors aside)."""
        started = time.monotonic()
        try:
            response = self._client.models.generate_content(
                model=self.params.model, contents=prompt, config=self.config(schema)
            )
        except Exception as exc:
            if not _service_error(exc):
                raise
            reason, detail = _reason_for_error(exc)
            return ModelCall(None, reason, detail, elapsed_s=time.monotonic() - started)
        return interpret(response, time.monotonic() - started)


def _usage(response: Any) -> dict[str, Any]:
    usage = response.usage_metadata
    if usage is None:
        return {}
    return {
        "prompt_tokens": usage.prompt_token_count or 0,
        "output_tokens": (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0),
        "total_tokens": usage.total_token_count or 0,
    }


def interpret(response: Any, elapsed_s: float = 0.0) -> ModelCall:
    """Classify a GenerateContentResponse: refusal, empty, truncated, malformed JSON, or an answer."""
    usage = _usage(response)
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        return ModelCall(None, ReasonCode.REFUSED, f"prompt blocked: {feedback.block_reason}",
                         elapsed_s=elapsed_s, **usage)
    if not response.candidates:
        return ModelCall(None, ReasonCode.EMPTY_ANSWER, "no candidates", elapsed_s=elapsed_s, **usage)
    candidate = response.candidates[0]
    finish = str(candidate.finish_reason.value) if candidate.finish_reason is not None else ""
    parts = candidate.content.parts if candidate.content is not None and candidate.content.parts else []
    text = "".join(p.text for p in parts if p.text and not p.thought)
    if finish in REFUSAL_FINISH_REASONS:
        return ModelCall(None, ReasonCode.REFUSED, f"finishReason {finish}", text, finish_reason=finish,
                         elapsed_s=elapsed_s, **usage)
    if not text.strip():
        return ModelCall(None, ReasonCode.EMPTY_ANSWER, f"no text (finishReason {finish or 'none'})",
                         finish_reason=finish, elapsed_s=elapsed_s, **usage)
    parsed_none = response.parsed is None
    answer, reason, detail = decode_answer(text)
    if reason is not None and finish == "MAX_TOKENS":
        reason, detail = ReasonCode.TRUNCATED, "answer cut at maxOutputTokens"
    return ModelCall(answer, reason, detail, text, parsed_none, finish, elapsed_s=elapsed_s, **usage)
