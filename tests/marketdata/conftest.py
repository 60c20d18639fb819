"""Shared paths for market data tests: the real sample files are read in place."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

BTC_1M = DATA / "btc-perp-2022-01_1m.csv"
TRADES = DATA / "binance-btcusdt-trades.csv"
BYBIT_BOOK = DATA / "bybit-xrpusdt-ob500.data.zip"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not BTC_1M.exists():
        pytest.fail(f"sample market data not found in {DATA}")
    return DATA
