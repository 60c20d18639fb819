"""Recorded Bybit v5 / Binance v3 REST payloads served on loopback, so the ccxt live venue is tested
offline. Templates in payloads/ are real response shapes; the server fills in the ids and states of
the orders the test placed (a small, stateful stand-in for the exchange)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

PAYLOADS = Path(__file__).parent / "payloads"


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


class FakeExchange:
    """Base: an aiohttp app on 127.0.0.1:<random port>; ``requests`` logs every call."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], str]] = []
        self.behavior = "fill"   # fill | rest | reject | down
        self.orders: dict[str, dict[str, Any]] = {}
        self._runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        return self.base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def point(self, exchange: Any) -> None:
        """Aim a ccxt exchange's REST URLs at this server (keeping each URL's path)."""
        api = exchange.urls["api"]
        for k, v in list(api.items()):
            if isinstance(v, str):
                rest = v.split("://", 1)[1]
                path = rest[rest.index("/"):] if "/" in rest else ""
                api[k] = self.base + path

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        self.requests.append((request.method, request.path, dict(request.query), body))
        if self.behavior == "down" and request.path not in self.always_up:
            return web.Response(status=503, text="service unavailable")
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return web.json_response({"retCode": 10001, "retMsg": f"no recording for {request.path}"}, status=404)
        return web.json_response(handler(request.query, body))

    routes: ClassVar[dict[tuple[str, str], Any]] = {}
    always_up: ClassVar[frozenset[str]] = frozenset()


class FakeBybit(FakeExchange):
    always_up = frozenset({"/v5/market/instruments-info", "/v5/user/query-api", "/v5/account/info"})

    def __init__(self) -> None:
        super().__init__()
        self._next = 1321003749386327552
        self.routes = {  # type: ignore[misc]
            ("GET", "/v5/market/instruments-info"): self.instruments,
            ("GET", "/v5/user/query-api"): lambda q, b: load("bybit_query_api.json"),
            ("GET", "/v5/account/info"): lambda q, b: load("bybit_account_info.json"),
            ("POST", "/v5/order/create"): self.create,
            ("GET", "/v5/order/realtime"): self.realtime,
            ("GET", "/v5/order/history"): self.realtime,
            ("GET", "/v5/execution/list"): self.executions,
            ("POST", "/v5/order/cancel"): self.cancel,
        }

    def instruments(self, q: Any, b: str) -> dict[str, Any]:
        data = load("bybit_instruments_linear.json")
        if q.get("status") == "PreLaunch":
            data["result"]["list"] = []
        return data

    def create(self, q: Any, body: str) -> dict[str, Any]:
        req = json.loads(body)
        if self.behavior == "reject":
            return load("bybit_order_create_insufficient.json")
        oid = str(self._next)
        self._next += 1
        status, fills = {"fill": ("Filled", 2), "partial": ("PartiallyFilled", 1)}.get(self.behavior, ("New", 0))
        self.orders[oid] = {"link": req.get("orderLinkId", ""), "req": req, "status": status, "fills": fills,
                            "n": len(self.orders)}
        data = load("bybit_order_create.json")
        data["result"] = {"orderId": oid, "orderLinkId": req.get("orderLinkId", "")}
        return data

    def _find(self, q: Any) -> tuple[str, dict[str, Any]] | None:
        for oid, o in self.orders.items():
            if q.get("orderId") == oid or (q.get("orderLinkId") and q.get("orderLinkId") == o["link"]):
                return oid, o
        return None

    def realtime(self, q: Any, b: str) -> dict[str, Any]:
        data = load("bybit_order_realtime.json")
        found = self._find(q)
        if found is None:
            data["result"]["list"] = []
            return data
        oid, o = found
        row = data["result"]["list"][0]
        row.update(orderId=oid, orderLinkId=o["link"], orderStatus=o["status"], qty=o["req"]["qty"],
                   side=o["req"]["side"], orderType=o["req"]["orderType"])
        if o.get("fills", 2) == 0:
            row.update(cumExecQty="0", cumExecValue="0", cumExecFee="0", avgPrice="", leavesQty=o["req"]["qty"])
        elif o.get("fills", 2) == 1:
            row.update(cumExecQty="0.006", cumExecValue="300", cumExecFee="0.165", leavesQty="0.004")
        return data

    def executions(self, q: Any, b: str) -> dict[str, Any]:
        data = load("bybit_execution_list.json")
        found = self._find(q)
        if found is None:
            data["result"]["list"] = []
            return data
        oid, o = found
        data["result"]["list"] = data["result"]["list"][: o.get("fills", 2)]
        for row in data["result"]["list"]:
            row.update(orderId=oid, orderLinkId=o["link"], side=o["req"].get("side", row["side"]))
            if o.get("n"):  # every order after the first gets execution ids of its own
                row["execId"] = f'{row["execId"]}-{o["n"]}'
        return data

    def cancel(self, q: Any, body: str) -> dict[str, Any]:
        req = json.loads(body)
        found = self._find(req)
        data = load("bybit_order_cancel.json")
        if found is not None:
            found[1]["status"] = "Cancelled"
            data["result"] = {"orderId": found[0], "orderLinkId": found[1]["link"]}
        return copy.deepcopy(data)


class FakeBinance(FakeExchange):
    """Binance spot v3: exchange info, and orders answered with the FULL response (fills inline)."""

    always_up = frozenset({"/api/v3/exchangeInfo"})

    def __init__(self) -> None:
        super().__init__()
        self._next = 4127283
        self.routes = {  # type: ignore[misc]
            ("GET", "/api/v3/exchangeInfo"): lambda q, b: load("binance_exchange_info.json"),
            ("POST", "/api/v3/order"): self.create,
        }

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if self.behavior == "reject" and request.path == "/api/v3/order":
            self.requests.append((request.method, request.path, dict(request.query), await request.text()))
            return web.json_response(load("binance_order_rejected.json"), status=400)
        return await super()._dispatch(request)

    def create(self, q: Any, body: str) -> dict[str, Any]:
        from urllib.parse import parse_qs

        req = {k: v[0] for k, v in parse_qs(body).items()} | dict(q)
        data = load("binance_order_full.json")
        data.update(orderId=self._next, clientOrderId=req.get("newClientOrderId", ""), side=req.get("side", "BUY"),
                    origQty=req.get("quantity", data["origQty"]))
        self._next += 1
        return data


async def live_bybit(data_dir: Path, control_key: str) -> tuple[FakeBybit, Any, Any]:
    """A started :class:`FakeBybit`, a ccxt live venue aimed at it, and the live-mode settings of an
    execution runtime in front of it (its outbox under ``data_dir``)."""
    from titan.core.config import Settings
    from titan.execution.live import LiveVenue, make_exchange

    fake = FakeBybit()
    await fake.start()
    exchange = make_exchange("bybit", "TESTKEY", "TESTSECRET", testnet=True)
    fake.point(exchange)
    venue = LiveVenue("bybit", exchange, poll_interval_s=0.05)
    settings = Settings(mode="live", venue="bybit", live_confirm=True, api_key="TESTKEY", api_secret="TESTSECRET",
                        nats_url="", pg_dsn="", execution_port=0, metrics_port=0, control_key=control_key,
                        data_dir=data_dir)
    return fake, venue, settings
