"""Market data: one event model (``titan.v1.MarketEvent``), three sources (simulator, file replay,
live public feeds), candle aggregation, order books and the NATS gateway.

Modules (import what you need; the live source pulls in ccxt only when used):

* :mod:`.events`   constructors/accessors of MarketEvent (``trade_event``, ``price_of``, ``decode`` ...)
* :mod:`.candles`  ``timeframe_ns``, ``CandleAggregator``
* :mod:`.book`     ``OrderBook`` (snapshot + delta, gap detection)
* :mod:`.source`   the ``Source`` protocol, ``pace``, ``open_source("sim" | "replay:PATH" | "live")``
* :mod:`.sim`      ``Simulator``, ``SimConfig``
* :mod:`.replay`   ``ReplaySource`` (files merged by time)
* :mod:`.files`    readers of the exchange sample formats, Titan's own ``EventWriter``/``read_titan``
* :mod:`.parsers`  raw Bybit v5 / Binance websocket message parsers
* :mod:`.live`     ``LiveSource`` over ccxt.pro
* :mod:`.gateway`  ``Gateway`` (publish on NATS) and ``subscribe``

See docs/market-data.md.
"""

from titan.core.marketdata.book import OrderBook
from titan.core.marketdata.candles import CandleAggregator, timeframe_ns
from titan.core.marketdata.events import MalformedEvent, kind_of, price_of, ts_of
from titan.core.marketdata.source import OfflineSource, Source, open_source

__all__ = [
    "CandleAggregator",
    "MalformedEvent",
    "OfflineSource",
    "OrderBook",
    "Source",
    "kind_of",
    "open_source",
    "price_of",
    "timeframe_ns",
    "ts_of",
]
