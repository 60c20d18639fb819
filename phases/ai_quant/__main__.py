"""Ask Gemini for one proposal and run the guardrails on it: ``python -m titan.phases.ai_quant PARAMS.json``.

A dry look at what the model proposes for a phase's current params (a JSON file of its
``spec.params``), printed as JSON with the guardrail's verdict. Nothing is stored or applied:
validation needs backtests, which run above the phases — the full job is ``titan quant run``
(locally, and in the cluster's CronJob).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from titan.core.config import ConfigError, load_settings
from titan.phases.ai_quant.gemini import GeminiProposer, MissingApiKey
from titan.phases.ai_quant.params import AiQuantParams, TunableError, response_model, tunable_space
from titan.phases.ai_quant.strategy import PerformanceSummary, build_prompt, check_proposal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m titan.phases.ai_quant", description=__doc__)
    parser.add_argument("params", type=Path, help="JSON file of the phase's current spec.params")
    parser.add_argument("--phase-kind", default="scavenger")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        space = tunable_space(args.phase_kind)
        current = json.loads(args.params.read_text())
        config = AiQuantParams()
        proposer = GeminiProposer(settings.gemini_api_key.get_secret_value(), config, settings.gemini_base_url)
    except (ConfigError, TunableError, MissingApiKey, OSError, ValueError) as exc:
        print(f"ai-quant: {exc}", file=sys.stderr)
        return 2
    try:
        prompt = build_prompt(space, space.current(current), PerformanceSummary.of([]), [], config.max_relative_step)
        call = proposer.ask(prompt, response_model(space))
    finally:
        proposer.close()
    verdict = check_proposal(space, current, call.answer, config.max_relative_step) if call.reason is None else None
    reason = call.reason or (verdict.reason if verdict else None)
    print(json.dumps({
        "reason": reason.value if reason else None,
        "detail": call.detail if call.reason else (verdict.detail if verdict else ""),
        "parsed_none": call.parsed_none,
        "changes": [{"key": c.key, "old": float(c.old), "new": float(c.new)} for c in (verdict.changes if verdict
                                                                                       else ())],
        "tokens": call.total_tokens,
    }, indent=2))
    return 0 if reason is None else 1


if __name__ == "__main__":
    sys.exit(main())
