"""The spine: wire stubs are current, packaging lists every package, config fails clearly,
the catalog is the one place subjects are spelled, money is exact, signing detects tampering."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.core import money, signing
from titan.core.catalog import Catalog, EventKind, MarketKind
from titan.core.config import ConfigError, Mode, load_settings, parse_cpu_list
from titan.v1 import events_pb2, execution_pb2, trading_pb2

ROOT = Path(__file__).resolve().parents[1]


# --- generated stubs ---------------------------------------------------------------------------

def test_generated_stubs_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stale_stub_is_detected(tmp_path: Path) -> None:
    """The check really fails when a stub differs from a fresh generation — shown on a copy of
    proto/, so no tracked file is ever edited (not even for a moment)."""
    copy = shutil.copytree(ROOT / "proto", tmp_path / "proto", ignore=shutil.ignore_patterns("__pycache__"))
    spec = importlib.util.spec_from_file_location("generate_copy", copy / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert copy / "titan" / "v1" == generate.PACKAGE_DIR  # it works on the copy
    assert "common_pb2.pyi" not in generate.stale_files()
    stub = copy / "titan" / "v1" / "common_pb2.pyi"
    stub.write_bytes(stub.read_bytes() + b"\n# edited by hand\n")
    assert "common_pb2.pyi" in generate.stale_files()


# --- packaging ---------------------------------------------------------------------------------

def test_every_package_folder_is_listed_in_pyproject() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping: dict[str, str] = conf["package-dir"]
    listed = set(conf["packages"])
    found = set()
    for package, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - found == set(), "listed packages without a folder"


def test_no_top_level_operator_package_shadows_stdlib() -> None:
    import operator

    assert hasattr(operator, "itemgetter")
    import titan.operator

    assert titan.operator.__file__ is not None
    assert Path(titan.operator.__file__).parent == ROOT / "operator"


def test_cli_help_reads_well() -> None:
    result = subprocess.run([sys.executable, "-m", "titan.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Titan" in result.stdout and "infra" in result.stdout


# --- config ------------------------------------------------------------------------------------

def test_defaults_are_paper(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TITAN_MODE", "TITAN_VENUE"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings()
    assert settings.mode is Mode.PAPER
    assert settings.venue == "paper"


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"TITAN_EXECUTION_PORT": "70000"}, "TITAN_EXECUTION_PORT"),
        ({"TITAN_MODE": "yolo"}, "TITAN_MODE"),
        ({"TITAN_PG_DSN": "mysql://x"}, "TITAN_PG_DSN"),
        ({"TITAN_NATS_URL": "http://x"}, "TITAN_NATS_URL"),
        ({"TITAN_EXECUTION_CPUS": "3-1"}, "TITAN_EXECUTION_CPUS"),
        ({"TITAN_NAMESPACE": "bad.ns"}, "TITAN_NAMESPACE"),
        ({"TITAN_VENUE": "ftx"}, "TITAN_VENUE"),
    ],
)
def test_invalid_config_names_the_field(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], field: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert field in str(err.value)


def test_live_mode_needs_explicit_opt_in_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TITAN_MODE", "live")
    monkeypatch.setenv("TITAN_VENUE", "bybit")
    with pytest.raises(ConfigError) as err:
        load_settings()
    text = str(err.value)
    assert "TITAN_LIVE_CONFIRM" in text and "TITAN_API_KEY" in text and "TITAN_API_SECRET" in text
    monkeypatch.setenv("TITAN_LIVE_CONFIRM", "true")
    monkeypatch.setenv("TITAN_API_KEY", "k")
    monkeypatch.setenv("TITAN_API_SECRET", "s")
    assert load_settings().mode is Mode.LIVE


def test_cpu_list_parsing() -> None:
    assert parse_cpu_list("2-3") == [2, 3]
    assert parse_cpu_list("0,2,4-5") == [0, 2, 4, 5]
    with pytest.raises(ValueError, match="bad CPU range"):
        parse_cpu_list("5-2")


# --- catalog -----------------------------------------------------------------------------------

def test_catalog_subjects_and_namespaces() -> None:
    default = Catalog()
    assert default.md_subject("bybit", "BTCUSDT", MarketKind.TRADE) == "titan.md.bybit.BTCUSDT.trade"
    assert default.event_subject("execution", EventKind.FILL) == "titan.evt.execution.fill.v1"
    assert default.command_subject("execution", "flatten") == "titan.cmd.execution.flatten.v1"
    assert default.events_stream.name == "TITAN_EVENTS"
    ns = Catalog("t1")
    assert ns.md_subject("bybit", "BTCUSDT", "trade") == "t1.titan.md.bybit.BTCUSDT.trade"
    assert ns.events_stream.name == "t1_TITAN_EVENTS"
    assert ns.events_stream.subjects == ("t1.titan.evt.>",)
    assert {b.name for b in ns.buckets} == {"t1_TITAN_BUDGETS", "t1_TITAN_CONTROL", "t1_TITAN_PARAMS"}
    with pytest.raises(ValueError, match="invalid NATS subject token"):
        default.md_subject("by.bit", "BTCUSDT", "trade")


def test_event_kinds_cover_every_event_body() -> None:
    bodies = {f.name for f in events_pb2.Event.DESCRIPTOR.oneofs_by_name["body"].fields}
    assert bodies == {k.value if k.value != "funding" else "funding" for k in EventKind}


def test_nothing_outside_the_catalog_spells_a_subject() -> None:
    pattern = re.compile(r"""["'](?:\{[^}]*\}\.)?titan\.(?:md|evt|cmd|diag)\.""")
    offenders = []
    for folder in ("core", "operator", "phases", "execution", "cli"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "catalog.py" and path.parent.name == "core":
                continue
            if pattern.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# --- money -------------------------------------------------------------------------------------

@given(st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-10**12, max_value=10**12))
def test_money_roundtrips_exactly(value: Decimal) -> None:
    assert money.to_decimal(money.to_wire(value)) == value


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-inf", "abc", ""])
def test_money_rejects_non_finite(bad: str) -> None:
    with pytest.raises(money.MoneyError):
        money.to_decimal(bad)


def test_quantize_down() -> None:
    assert money.quantize_down(Decimal("1.23456"), Decimal("0.001")) == Decimal("1.234")
    assert money.quantize_down(Decimal("-1.23456"), Decimal("0.01")) == Decimal("-1.23")


def test_wire_decimal_parses_each_short_string_once_and_refuses_what_d_refuses() -> None:
    kept = money._wire_decimal_kept
    kept.cache_clear()
    first = money.wire_decimal("500")
    assert first == Decimal(500) and money.wire_decimal("500") is first  # handed out again, not parsed again
    assert money.wire_decimal("500.0") == first and money.wire_decimal("500.0") is not first  # its own string
    assert kept.cache_info().currsize == 2 and kept.cache_info().maxsize == money.WIRE_DECIMALS_KEPT
    for _ in range(2):  # refused every time, never kept
        with pytest.raises(money.MoneyError):
            money.wire_decimal("NaN")
    assert kept.cache_info().currsize == 2
    long = "1" + "0" * money.WIRE_DECIMAL_LONGEST  # longer than what is kept: parsed every time
    assert money.wire_decimal(long) == Decimal(10) ** money.WIRE_DECIMAL_LONGEST
    assert money.wire_decimal(long) is not money.wire_decimal(long) and kept.cache_info().currsize == 2


# --- signing -----------------------------------------------------------------------------------

def _signal() -> trading_pb2.Signal:
    sig = trading_pb2.Signal(
        phase_id="scavenger", signal_id="s-1", intent=trading_pb2.INTENT_OPEN, confidence=0.8, created_at_ns=1
    )
    sig.legs.add(symbol="BTCUSDT", side=1, size_quote="100", order_type=trading_pb2.ORDER_TYPE_MARKET)
    sig.metadata["b"] = "2"
    sig.metadata["a"] = "1"
    return sig


def test_signal_signature_detects_tampering() -> None:
    key = b"k" * 32
    sig = signing.sign_signal(_signal(), key)
    assert signing.verify_signal(sig, key)
    assert not signing.verify_signal(sig, b"x" * 32)
    tampered = trading_pb2.Signal()
    tampered.CopyFrom(sig)
    tampered.legs[0].size_quote = "1000"
    assert not signing.verify_signal(tampered, key)
    unsigned = _signal()
    assert not signing.verify_signal(unsigned, key)


def test_a_sealed_signal_opens_only_with_its_key_its_bytes_and_its_envelope() -> None:
    key = b"k" * 32
    sig = signing.sign_signal(_signal(), key)
    sealed = signing.seal_signal(sig)
    assert sealed.signal == signing.canonical_bytes(sig) and sealed.signature == sig.signature
    opened = signing.open_sealed(sealed, key)
    assert opened == sig and signing.verify_signal(opened, key)  # the same signal, its signature set

    def changed(**fields: object) -> execution_pb2.SealedSignal:
        copy = execution_pb2.SealedSignal()
        copy.CopyFrom(sealed)
        for name, value in fields.items():
            setattr(copy, name, value)
        return copy

    assert signing.open_sealed(sealed, b"x" * 32) is None and signing.open_sealed(sealed, None) is None
    assert signing.open_sealed(changed(signal=sealed.signal.replace(b"100", b"900")), key) is None
    assert signing.open_sealed(changed(signature=b""), key) is None
    assert signing.open_sealed(changed(signal_id="s-other"), key) is None  # the envelope names another
    assert signing.open_sealed(changed(phase_id="hunter"), key) is None
    inner_signature = trading_pb2.Signal()
    inner_signature.CopyFrom(sig)  # bytes that carry a signature of their own, signed as they are
    inner = inner_signature.SerializeToString(deterministic=True)
    assert signing.open_sealed(changed(signal=inner, signature=signing.mac_key(key).digest(inner)), key) is None
    garbage = b"\xff\xff\xff"  # signed, yet no Signal: refused, not raised
    assert signing.open_sealed(changed(signal=garbage, signature=signing.mac_key(key).digest(garbage)), key) is None


@given(key=st.binary(min_size=1, max_size=200), data=st.binary(max_size=300))
def test_prepared_mac_key_is_hmac_sha256(key: bytes, data: bytes) -> None:
    """The prepared key (pads hashed once) gives the standard library's HMAC, keys longer than the
    block included."""
    import hashlib
    import hmac

    assert signing.MacKey(key).digest(data) == hmac.new(key, data, hashlib.sha256).digest()


def test_control_signature() -> None:
    key = b"c" * 32
    req = execution_pb2.UpdateBudgetsRequest()
    req.auth.issuer = "brain"
    req.auth.issued_at_ns = 5
    req.budgets.add(phase_id="hunter", weight="0.5")
    signing.sign_control(req, key)
    assert signing.verify_control(req, key)
    req.budgets[0].weight = "1"
    assert not signing.verify_control(req, key)


def test_load_keys(tmp_path: Path) -> None:
    (tmp_path / "scavenger.key").write_text("0123456789abcdef0123\n")
    (tmp_path / "short.key").write_text("tiny")
    with pytest.raises(ValueError, match="shorter than 16 bytes"):
        signing.load_keys(tmp_path)
    (tmp_path / "short.key").unlink()
    assert signing.load_keys(tmp_path) == {"scavenger": b"0123456789abcdef0123"}
