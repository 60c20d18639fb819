"""A restarted simulated market continues where the last run's stopped: the simulator starts at given
perp marks (the same path shifted in log price), the gateway keeps its last marks in a file, and
`titan up` hands that file to the gateway and refuses a damaged one before starting anything."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import nats
import pytest

from tests.util import wait_for
from titan.cli.up import Organism, child_specs, market_marks_path
from titan.core.catalog import Catalog
from titan.core.config import Settings
from titan.core.marketdata.continuation import ContinuationError, MarketMarks, MarkTracker, load, save
from titan.core.marketdata.gateway import subscribe
from titan.core.marketdata.sim import SimConfig, Simulator
from titan.v1.common_pb2 import InstrumentKind
from titan.v1.market_pb2 import MarketEvent

TITAN = [sys.executable, "-m", "titan.cli"]
START_NS = 1_780_000_000 * 10**9
PERP = InstrumentKind.INSTRUMENT_KIND_PERP


def _edges(cfg: SimConfig) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """Each symbol's last 1m perp close of the history prelude and its first live perp mark."""
    closes: dict[str, Decimal] = {}
    marks: dict[str, Decimal] = {}
    for ev in Simulator(cfg).events():
        kind = ev.WhichOneof("payload")
        if ev.instrument != PERP:
            continue
        if ev.exchange_ts_ns < cfg.start_ns:
            if kind == "candle" and ev.candle.timeframe == "1m":
                closes[ev.symbol] = Decimal(ev.candle.close)
        elif kind == "mark":
            marks.setdefault(ev.symbol, Decimal(ev.mark.mark_price))
    return closes, marks


def test_the_history_ends_at_the_start_marks_and_the_path_is_the_same_shifted() -> None:
    base = SimConfig(seed=3, start_ns=START_NS, end_ns=START_NS + 3 * 10**9, history_hours=6)
    targets = {"BTCUSDT": Decimal("56258.5"), "ETHUSDT": Decimal("3012.28")}
    anchored = base.replace(start_marks=tuple((s, float(p)) for s, p in targets.items()))
    plain_closes, plain_marks = _edges(base)
    closes, marks = _edges(anchored)
    assert closes == targets  # the history's last perp close is exactly where the last run stopped
    for symbol, target in targets.items():
        assert plain_closes[symbol] != target
        # the first live second moves from there as the unshifted market moved from its own close
        shifted = float(plain_marks[symbol] / plain_closes[symbol])
        assert math.isclose(float(marks[symbol] / target), shifted, rel_tol=1e-4), symbol


def test_start_marks_without_a_prelude_start_at_the_mark() -> None:
    cfg = SimConfig(seed=5, start_ns=START_NS, end_ns=START_NS + 2 * 10**9, start_marks=(("BTCUSDT", 41000.0),))
    _, marks = _edges(cfg)
    assert abs(float(marks["BTCUSDT"]) / 41000.0 - 1) < 0.002  # one second of a quiet market


@pytest.mark.parametrize(("marks", "message"), [
    ((("DOGEUSDT", 0.1),), "does not run: DOGEUSDT"),
    ((("BTCUSDT", 0.0),), "positive"),
    ((("BTCUSDT", float("nan")),), "positive"),
])
def test_bad_start_marks_are_refused(marks: tuple[tuple[str, float], ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        next(iter(Simulator(SimConfig(start_ns=START_NS, start_marks=marks))))


def test_the_tracker_keeps_the_last_live_perp_mark(tmp_path: Path) -> None:
    cfg = SimConfig(seed=2, start_ns=START_NS, end_ns=START_NS + 4 * 10**9, history_hours=1)
    tracker = MarkTracker(cfg.venue, live_from_ns=cfg.start_ns)
    last: dict[str, str] = {}
    for ev in Simulator(cfg).events():
        tracker.observe(ev)
        if ev.instrument == PERP and ev.WhichOneof("payload") == "mark" and ev.exchange_ts_ns >= cfg.start_ns:
            last[ev.symbol] = ev.mark.mark_price
    snapshot = tracker.snapshot()
    assert snapshot is not None and {s: str(m) for s, m in snapshot.marks} == last
    path = tmp_path / "run" / "market-marks.json"
    save(path, snapshot)
    assert load(path) == snapshot
    assert not path.with_name(path.name + ".partial").exists()
    assert load(tmp_path / "missing.json") is None


@pytest.mark.parametrize(("body", "field"), [
    ("{", "not JSON"),
    ('{"format": 2}', "'format'"),
    ('{"format": 1, "venue": "sim", "at_ns": -1, "marks": {"BTCUSDT": "1"}}', "'at_ns'"),
    ('{"format": 1, "venue": "sim", "at_ns": 1, "marks": {}}', "'marks'"),
    ('{"format": 1, "venue": "sim", "at_ns": 1, "marks": {"BTCUSDT": "-3"}}', "'marks.BTCUSDT'"),
    ('{"format": 1, "venue": "sim", "at_ns": 1, "marks": {"BTCUSDT": 1.5}}', "'marks.BTCUSDT'"),
    ('{"format": 1, "venue": "", "at_ns": 1, "marks": {"BTCUSDT": "1"}}', "'venue'"),
])
def test_a_damaged_file_is_refused_naming_file_and_field(tmp_path: Path, body: str, field: str) -> None:
    path = tmp_path / "market-marks.json"
    path.write_text(body)
    with pytest.raises(ContinuationError, match=field) as err:
        load(path)
    assert str(path) in str(err.value)


def test_titan_up_gives_the_gateway_the_data_dirs_marks_file(tmp_path: Path) -> None:
    settings = Settings(pg_dsn="postgresql://127.0.0.1:1/x", nats_url="nats://127.0.0.1:1", data_dir=tmp_path)
    org = Organism(settings, tmp_path / "organism", tmp_path / "keys", "k" * 64, ["scavenger"], Decimal(1000))

    def gateway_args(source: str) -> list[str]:
        gateway = next(s for s in child_specs(org, source, 1.0, "", tmp_path / "logs") if s.name == "gateway")
        return gateway.argv[gateway.argv.index("gateway") + 1:]

    args = gateway_args("sim:4")
    assert args[args.index("--market-state") + 1] == str(market_marks_path(tmp_path))
    replay = tmp_path / "day.csv"
    assert "--market-state" not in gateway_args(f"replay:{replay}")


def test_titan_up_refuses_a_damaged_marks_file_before_starting_anything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = market_marks_path(data)
    path.parent.mkdir(parents=True)
    path.write_text('{"format": 1, "venue": "sim", "at_ns": 1, "marks": {"BTCUSDT": "zero"}}')
    env = {"PATH": os.environ["PATH"], "TITAN_DATA_DIR": str(data), "HOME": str(tmp_path)}
    proc = subprocess.run([*TITAN, "up", "--headless", "--duration", "5s"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert str(path) in proc.stderr and "marks.BTCUSDT" in proc.stderr
    assert not (data / "pg").exists() and not (data / "nats").exists()  # nothing was started


def _gateway(nats_url: str, catalog: Catalog, state: Path, log: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TITAN_NATS_URL": nats_url, "TITAN_NAMESPACE": catalog.namespace,
           "TITAN_DATA_DIR": str(tmp_path / "data"),
           "TITAN_METRICS_PORT": "0", "TITAN_HEALTH_PORT": "0"}
    return subprocess.Popen([*TITAN, "data", "gateway", "--source", "sim:9", "--speed", "1",
                             "--market-state", str(state)], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


async def test_a_restarted_gateway_continues_from_its_saved_marks(nats_url: str, catalog: Catalog,
                                                                  tmp_path: Path) -> None:
    state = tmp_path / "market-marks.json"
    first = _gateway(nats_url, catalog, state, tmp_path / "first.log", tmp_path)
    try:
        await wait_for(lambda: state.exists(), timeout=90)
    finally:
        _stop(first)
    saved = load(state)
    assert isinstance(saved, MarketMarks) and {s for s, _ in saved.marks} == {"BTCUSDT", "ETHUSDT"}
    assert "a new market from seed 9" in (tmp_path / "first.log").read_text()
    # Far from anything seed 9 reaches on its own, so only a continued market can start there.
    saved = MarketMarks(saved.venue, saved.at_ns, tuple((s, (m * Decimal("1.37")).quantize(m)) for s, m in saved.marks))
    save(state, saved)

    marks: dict[str, Decimal] = {}
    nc = await nats.connect(nats_url)

    async def on_mark(ev: MarketEvent) -> None:
        if ev.instrument == PERP and ev.exchange_ts_ns > saved.at_ns:  # live, not the restarted prelude
            marks.setdefault(ev.symbol, Decimal(ev.mark.mark_price))

    await subscribe(nc, catalog, on_mark, venue="sim", kind="mark")
    await nc.flush()
    second = _gateway(nats_url, catalog, state, tmp_path / "second.log", tmp_path)
    try:
        await wait_for(lambda: len(marks) == 2, timeout=90)
    finally:
        _stop(second)
        await nc.close()
    for symbol, mark in saved.marks:
        # the same market a few seconds on
        assert abs(marks[symbol] / mark - 1) < Decimal("0.005"), (symbol, marks[symbol], mark)
    log = (tmp_path / "second.log").read_text()
    assert "continues from the marks saved at" in log and str(state) in log
    assert json.loads(state.read_text())["at_ns"] > saved.at_ns  # and it kept saving
