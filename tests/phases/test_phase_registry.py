"""titan.phases.registry: one entry per runnable phase, used by `titan phase` and `titan up`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from titan.cli.phase_cmd import app as phase_app
from titan.cli.up import RUNNABLE_PHASES
from titan.core.clock import ManualClock
from titan.phases import registry

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"


def test_every_registered_phase_builds_its_strategy_on_the_given_clock() -> None:
    assert "scavenger" in registry.names()
    for name in registry.names():
        kind = registry.get(name)
        assert kind.name == name
        clock = ManualClock(123)
        strat = kind.make_strategy(None, f"{name}-x", clock)
        assert strat.phase_id == f"{name}-x"
        assert strat.clock is clock  # type: ignore[attr-defined]
        assert callable(kind.main)


def test_unknown_phase_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="scavenger"):
        registry.get("nope")


def test_cli_and_up_use_the_registry() -> None:
    res = CliRunner().invoke(phase_app, ["list"])
    assert res.exit_code == 0
    assert res.output.split() == registry.names()
    assert set(RUNNABLE_PHASES) == set(registry.names())
    res = CliRunner().invoke(phase_app, ["run", "nope"])
    assert res.exit_code == 2


def test_sample_params_validate_with_the_registered_model() -> None:
    checked = 0
    for path in SAMPLES.glob("titanphase-*.yaml"):
        doc = yaml.safe_load(path.read_text())
        name = doc["spec"]["phase"]
        if name in registry.PHASES:
            registry.get(name).params_model.model_validate(doc["spec"].get("params") or {})
            checked += 1
    assert checked == len(registry.names())
