"""The sample TitanPhase resources `titan up` and the chart ship are accepted by their phases."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from titan.phases.scavenger.params import ScavengerParams

SAMPLES = Path(__file__).resolve().parents[1] / "crds" / "samples"
MODELS: dict[str, type[pydantic.BaseModel]] = {"scavenger": ScavengerParams}


def _phase_docs() -> list[dict[str, object]]:
    docs = []
    for path in sorted(SAMPLES.glob("titanphase-*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.mark.parametrize("doc", [d for d in _phase_docs() if d["spec"]["phase"] in MODELS],  # type: ignore[index]
                         ids=lambda d: d["spec"]["phase"])
def test_sample_params_validate_against_the_phase_model(doc: dict[str, dict[str, object]]) -> None:
    model = MODELS[str(doc["spec"]["phase"])]
    params = model.model_validate(doc["spec"].get("params") or {})
    assert params is not None


def test_camel_and_snake_case_keys_both_work_and_typos_are_refused() -> None:
    assert ScavengerParams.model_validate({"minTradesInWindow": 7}).min_trades_in_window == 7
    assert ScavengerParams.model_validate({"min_trades_in_window": 8}).min_trades_in_window == 8
    with pytest.raises(pydantic.ValidationError, match="minTradesInWindw"):
        ScavengerParams.model_validate({"minTradesInWindw": 7})
