"""Hostile TitanPhase/TitanBrain specs (hypothesis): a sample with one field (any depth of the CRD
schema, or an unknown one) set to a hostile value, checked against the CRD's openAPIV3Schema (the
schema tests' validator) and through the Brain's parse_brain_spec/parse_phase_spec. For each input:
no exception but PolicyError, whose message starts with the field it is about (the reason the
operator puts into its InvalidSpec Event), and `titan up`'s start-up check names file and field.
Prints the inputs tried and how many the schema and the Brain refused."""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.crds import test_crd_schemas
from titan.cli.up_checks import StartupError, check_manifests
from titan.operator.brain import PolicyError, parse_brain_spec, parse_phase_spec

TALLY: dict[str, dict[str, int]] = {}

HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=50),
    st.sampled_from(["NaN", "-1", "1e999", "0", "", "Halted", "Off", "10000000000", "0.0000001", "${HOME}",
                     "'; DROP TABLE events; --"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.recursive(st.integers(), lambda inner: st.lists(inner, max_size=3), max_leaves=30),
)


_validator = functools.cache(test_crd_schemas._validator)
_samples = functools.cache(test_crd_schemas._samples)


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def spec_paths(schema: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every property path under spec in a CRD schema."""
    out = []
    for key, sub in schema.get("properties", {}).items():
        out.append((*prefix, key))
        out += spec_paths(sub, (*prefix, key))
    return out


def sample(kind: str) -> dict[str, Any]:
    return next(d for d in _samples() if d["kind"] == kind and (kind == "TitanBrain" or d["spec"]["phase"] == "hunter"))


def with_value(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    cur = out["spec"]
    for key in path[:-1]:
        nxt = cur.get(key)
        if not isinstance(nxt, dict):
            nxt = cur[key] = {}
        cur = nxt
    cur[path[-1]] = value
    return out


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    for kind, tally in sorted(TALLY.items()):
        print(f"\nfuzz inputs tried: {kind} spec: {tally['tried']} "
              f"(CRD schema refused {tally['schema_refused']}, the Brain refused {tally['brain_refused']})")


def check(kind: str, doc: dict[str, Any], path: tuple[str, ...]) -> None:
    tally = TALLY.setdefault(kind, {"tried": 0, "schema_refused": 0, "brain_refused": 0})
    tally["tried"] += 1
    if any(True for _ in _validator(kind).iter_errors(doc)):
        tally["schema_refused"] += 1
    try:
        if kind == "TitanBrain":
            parse_brain_spec(doc["spec"])
        else:
            parse_phase_spec(doc["metadata"]["name"], doc["spec"])
    except PolicyError as err:
        message = str(err)
    else:
        return
    tally["brain_refused"] += 1
    field = message.split(":", 1)[0]
    assert field and message[len(field):].startswith(":"), message  # "<field>: <what is wrong>"


def paths_of(kind: str) -> list[tuple[str, ...]]:
    schema = _validator(kind).schema["properties"]["spec"]
    return [*spec_paths(schema), ("notAField",)]


@fuzz(700)
@given(data=st.data())
def test_hostile_brain_specs(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(paths_of("TitanBrain")))
    check("TitanBrain", with_value(sample("TitanBrain"), path, data.draw(HOSTILE)), path)


@fuzz(700)
@given(data=st.data())
def test_hostile_phase_specs(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(paths_of("TitanPhase")))
    check("TitanPhase", with_value(sample("TitanPhase"), path, data.draw(HOSTILE)), path)


@fuzz(60)
@given(data=st.data())
def test_titan_up_names_file_and_field(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """What the Brain refuses, `titan up` refuses before starting anything, naming file and field."""
    kind = data.draw(st.sampled_from(["TitanBrain", "TitanPhase"]))
    path = data.draw(st.sampled_from(paths_of(kind)))
    doc = with_value(sample(kind), path, data.draw(HOSTILE.filter(lambda v: not (isinstance(v, float)
                                                                                 and math.isnan(v)))))
    TALLY.setdefault("titan up check of a", {"tried": 0, "schema_refused": 0, "brain_refused": 0})["tried"] += 1
    folder = tmp_path_factory.mktemp("organism")
    others = [d for d in (sample("TitanBrain"), sample("TitanPhase")) if d["kind"] != kind]
    (folder / "organism.yaml").write_text(yaml.safe_dump_all([doc, *others]))
    try:
        if kind == "TitanBrain":
            parse_brain_spec(doc["spec"])
        else:
            parse_phase_spec(doc["metadata"]["name"], doc["spec"])
        refused = False
    except PolicyError as err:
        refused, field = True, str(err).split(":", 1)[0]
    else:
        field = ""
    try:
        check_manifests(Path(folder))
        said = ""
    except StartupError as err:
        said = str(err)
    if not said:
        assert not refused, doc
        return
    TALLY["titan up check of a"]["brain_refused"] += 1
    assert said.startswith(f"{folder / 'organism.yaml'}: {kind} "), said
    if refused:
        assert f"spec.{field}:" in said, said
