"""A real Prometheus (Debian's `prometheus`, the package promtool comes from) scrapes a running
`titan up`: every dashboard panel's query returns data, every alert rule evaluates without error on
the live series, and `titan halt` fires TitanTradingHalted through Prometheus' own rule evaluation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import DASHBOARDS, RULES, require, tool
from tests.util import wait_for_sync
from titan.core.infra.procs import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # titan up, then up to 300 s for the panels
TITAN = Path(sys.executable).parent / "titan"
# Every panel is checked against live data: NATS and JetStream come from the ledger writer's
# titan_nats_* / titan_jetstream_* (read from the embedded server's /varz and the JetStream API);
# PostgreSQL's exporter comes from Debian (prometheus-postgres-exporter) and is scraped here.
# Local components by `titan up` child, labelled as the chart's Service/PodMonitors label them.
COMPONENTS = {"execution": "execution", "brain": "operator", "gateway": "gateway", "ledger": "ledger"}


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) of every panel target, Grafana variables filled in."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text()).get("panels", []):
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if expr:
                    expr = (expr.replace("$__rate_interval", "30s").replace("$__range", "10m")
                            .replace('=~"$phase"', '=~".*"'))
                    out.append((path.name, panel.get("title", ""), expr))
    return out


@dataclass
class Prometheus:
    url: str

    def get(self, path: str, **params: str) -> Any:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def series(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query", query=expr)["result"]
        return result


def _metrics_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[Prometheus, dict[str, str]]]:
    prometheus_bin = require("prometheus")
    base = Path(tempfile.mkdtemp(prefix="titan-prom-"))
    base.chmod(0o755)  # as root, PostgreSQL's unprivileged user must enter it
    env = {k: v for k, v in os.environ.items() if k not in ("TITAN_PG_DSN", "TITAN_NATS_URL")}
    env |= {"TITAN_DATA_DIR": str(base / "titan")}
    procs: list[subprocess.Popen[bytes]] = []
    up = subprocess.Popen([str(TITAN), "up", "--headless", "--duration", "600s", "--stop-run-at", "20s"], env=env,
                          stdout=subprocess.DEVNULL, stderr=open(base / "up.log", "wb"),  # noqa: SIM115
                          start_new_session=True)
    try:
        run_file = base / "titan" / "run" / "organism.json"
        info = wait_for_sync(lambda: run_file.exists() and json.loads(run_file.read_text()), timeout=400, interval=1)
        ports: dict[str, int] = info["metrics"]
        wait_for_sync(lambda: all(_metrics_up(p) for p in ports.values()), timeout=240, interval=1)
        targets = [{"targets": [f"127.0.0.1:{port}"],
                    "labels": {"component": COMPONENTS.get(name, "phase"), "child": name}}
                   for name, port in ports.items()]
        exporter = tool("prometheus-postgres-exporter")
        if exporter:
            pg_port = free_port()
            dsn = info["pg_dsn"] + "?sslmode=disable"
            procs.append(subprocess.Popen(
                [exporter, f"--web.listen-address=127.0.0.1:{pg_port}"], env=env | {"DATA_SOURCE_NAME": dsn},
                stdout=subprocess.DEVNULL, stderr=open(base / "pg-exporter.log", "wb"),  # noqa: SIM115
                start_new_session=True))
            targets.append({"targets": [f"127.0.0.1:{pg_port}"], "labels": {"component": "postgres"}})
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "titan", "static_configs": targets}],
        }
        (base / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        procs.append(subprocess.Popen(
            [prometheus_bin, f"--config.file={base / 'prometheus.yml'}", f"--storage.tsdb.path={base / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=open(base / "prometheus.log", "wb"),  # noqa: SIM115
            start_new_session=True))
        prom = Prometheus(f"http://127.0.0.1:{port}")
        wait_for_sync(lambda: _metrics_up(port), timeout=60, interval=0.5)
        yield prom, env
    finally:
        _stop(up, signal.SIGINT, timeout=120)
        for proc in procs:
            _stop(proc)
        subprocess.run([str(TITAN), "infra", "down"], env=env, capture_output=True, timeout=120, check=False)
        if os.environ.get("TITAN_KEEP_TEST_DIR") is None:
            subprocess.run(["rm", "-rf", str(base)], check=False)


def test_every_dashboard_panel_shows_data(live: tuple[Prometheus, dict[str, str]]) -> None:
    prom, _ = live
    queries = panel_queries()
    assert len(queries) >= 60
    assert any("titan_nats_" in q[2] for q in queries) and any("titan_jetstream_" in q[2] for q in queries)

    def empty() -> list[tuple[str, str, str]]:
        missing = [q for q in queries if not prom.series(q[2])]
        # A win rate exists once a trade closed: until then "no data" is the truthful answer.
        closed = prom.series("sum(titan_phase_trades_closed_total)")
        if not closed or float(closed[0]["value"][1]) == 0:
            missing = [q for q in missing if q[1] != "Win rate (range)"]
        return missing

    missing: list[tuple[str, str, str]] = []

    def all_have_data() -> bool:
        missing[:] = empty()
        return not missing

    try:
        wait_for_sync(all_have_data, timeout=float(os.environ.get("TITAN_PANEL_WAIT_S", "300")), interval=5)
    except AssertionError:
        pytest.fail("panels without data:\n" + "\n".join(f"{d} | {t} | {e}" for d, t, e in missing))


def test_every_alert_rule_evaluates_without_error(live: tuple[Prometheus, dict[str, str]]) -> None:
    prom, _ = live
    want = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}

    def evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in prom.get("/api/v1/rules")["groups"] for r in g["rules"]]
        done = all(r.get("lastEvaluation", "").startswith("20") for r in rules)
        return rules if done and {r["name"] for r in rules} == want else None

    rules = wait_for_sync(evaluated, timeout=120, interval=1)
    errors = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok" or r.get("lastError")}
    assert not errors
    # execution, the Brain and market data are up and fresh: their alerts stay silent
    firing = {a["labels"]["alertname"] for a in prom.get("/api/v1/alerts")["alerts"]}
    assert not firing & {"TitanExecutionDown", "TitanOperatorDown", "TitanMarketDataStale", "TitanTradingHalted"}


def test_halt_fires_the_halted_alert(live: tuple[Prometheus, dict[str, str]]) -> None:
    prom, env = live
    halt = subprocess.run([str(TITAN), "halt", "--reason", "prometheus test"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert halt.returncode == 0, halt.stderr

    def firing() -> list[dict[str, Any]]:
        return [a for a in prom.get("/api/v1/alerts")["alerts"]
                if a["labels"]["alertname"] == "TitanTradingHalted" and a["state"] == "firing"]

    (alert,) = wait_for_sync(firing, timeout=120, interval=1)
    assert alert["labels"]["severity"] == "critical"
    assert prom.series('titan_trading_state{state="halted"} == 1')
