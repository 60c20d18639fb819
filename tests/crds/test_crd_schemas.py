"""Offline checks of the CRDs: valid CRD objects, structural schemas, samples that validate and
out-of-bounds values that are rejected (jsonschema over each CRD's openAPIV3Schema)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from titan.operator.brain import parse_brain_spec, parse_phase_spec

ROOT = Path(__file__).resolve().parents[2] / "crds"
CRD_FILES = ["titanphase.yaml", "titanbrain.yaml", "kopf-peering.yaml"]
K8S_VERSION = "1.30"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _crd(kind: str) -> dict[str, Any]:
    for name in CRD_FILES:
        for doc in _docs(ROOT / name):
            if doc["spec"]["names"]["kind"] == kind:
                return doc
    raise AssertionError(f"no CRD for {kind}")


def _validator(kind: str) -> jsonschema.Draft4Validator:
    schema = _crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def _samples() -> list[dict[str, Any]]:
    return [doc for path in sorted((ROOT / "samples").glob("*.yaml")) for doc in _docs(path)]


def _set(obj: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    cur = out
    *parents, leaf = dotted.split(".")
    for key in parents:
        cur = cur.setdefault(key, {})
    cur[leaf] = value
    return out


@pytest.mark.parametrize("name", CRD_FILES)
def test_crds_are_valid_kubernetes_objects(name: str) -> None:
    for doc in _docs(ROOT / name):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _walk(schema: dict[str, Any], path: str = "") -> list[str]:
    """Structural-schema rules: every node has a type (or is int-or-string / preserve-unknown)."""
    problems = []
    if "type" not in schema and not schema.get("x-kubernetes-int-or-string") \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(path or "/")
    for key, sub in schema.get("properties", {}).items():
        problems += _walk(sub, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        problems += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += _walk(schema["additionalProperties"], f"{path}{{}}")
    return problems


@pytest.mark.parametrize("kind", ["TitanPhase", "TitanBrain"])
def test_structural_schema_status_subresource_columns_short_names(kind: str) -> None:
    crd = _crd(kind)
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["group"] == "titan.trading" and version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert _walk(version["schema"]["openAPIV3Schema"]) == []
    assert crd["spec"]["names"]["shortNames"] == [{"TitanPhase": "tp", "TitanBrain": "tb"}[kind]]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    if kind == "TitanPhase":
        assert columns == ["Phase", "State", "Weight", "Notional", "Leverage", "PnL-Today", "Age"]
    else:
        assert {"Equity", "Risk", "Breaker", "Mode", "Switch"} <= set(columns)


def test_there_is_a_sample_per_phase_and_a_brain() -> None:
    samples = _samples()
    phases = sorted(s["spec"]["phase"] for s in samples if s["kind"] == "TitanPhase")
    assert phases == ["ai-quant", "hunter", "scavenger", "sentinel"]
    assert [s["kind"] for s in samples].count("TitanBrain") == 1


def test_samples_validate_against_the_crds_and_parse_in_the_core() -> None:
    for sample in _samples():
        errors = list(_validator(sample["kind"]).iter_errors(sample))
        assert errors == [], (sample["metadata"]["name"], [e.message for e in errors])
        if sample["kind"] == "TitanBrain":
            parse_brain_spec(sample["spec"])
        else:
            parse_phase_spec(sample["metadata"]["name"], sample["spec"])


def _sample(kind: str, name: str | None = None) -> dict[str, Any]:
    return next(s for s in _samples() if s["kind"] == kind and (name is None or s["metadata"]["name"] == name))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.phase", "gambler"),
        ("spec.venue", "ftx"),
        ("spec.maxLeverage", 126),
        ("spec.maxLeverage", -1),
        ("spec.enabled", "yes"),
        ("spec.symbols", ["BTC/USDT"]),
        ("spec.capitalBand.minEquity", -5),
        ("spec.capitalBand.maxEquity", 0),
        ("spec.replicas", 3),
        ("spec.resources.limits.cpu", 1.5),
        ("status.state", "Sleeping"),
    ],
)
def test_titanphase_out_of_bounds_is_rejected(path: str, value: Any) -> None:
    validator = _validator("TitanPhase")
    good = _sample("TitanPhase", "hunter")
    assert validator.is_valid(good)
    assert not validator.is_valid(_set(good, path, value))


def test_titanphase_needs_a_phase() -> None:
    bad = _sample("TitanPhase", "hunter")
    del bad["spec"]["phase"]
    assert not _validator("TitanPhase").is_valid(bad)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.tradingState", "Off"),
        ("spec.tradingState", "halted"),
        ("spec.riskPolicy.maxDailyDrawdown", 1.5),
        ("spec.riskPolicy.maxDailyDrawdown", 0),
        ("spec.riskPolicy.maxLeverage", 200),
        ("spec.riskPolicy.minEquity", -1),
        ("spec.riskPolicy.consecutiveLosses", 0),
        ("spec.riskPolicy.budgetTtlSeconds", 1),
        ("spec.bandEdges.startP2", 0),
        ("spec.bandEdges.hysteresis", 0.2),
        ("spec.bandEdges.hysteresis", 1.1),
        ("spec.leverageTiers", []),
        ("spec.leverageTiers", [{"below": 1000}]),
        ("spec.performance.maxModifier", 0.9),
        ("spec.initialEquity", -100),
    ],
)
def test_titanbrain_out_of_bounds_is_rejected(path: str, value: Any) -> None:
    validator = _validator("TitanBrain")
    good = _sample("TitanBrain")
    assert validator.is_valid(good)
    assert not validator.is_valid(_set(good, path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [("spec.tradingState", "Halted"), ("spec.tradingState", "Reducing"), ("spec.riskPolicy.maxLeverage", 0),
     ("spec.bandEdges.hysteresis", 1), ("spec.breakerResetToken", "ops-2026-11-24")],
)
def test_titanbrain_edge_values_are_accepted(path: str, value: Any) -> None:
    assert _validator("TitanBrain").is_valid(_set(_sample("TitanBrain"), path, value))
