"""Alert rules (promtool) and the metric names dashboards and rules may use."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from tests.deploy.tools import CHART, DASHBOARDS, MONITORING, RULES, require, run

RULE_TESTS = sorted((MONITORING / "tests").glob("*.yaml"))
INFRA_DASHBOARD = "titan-infrastructure.json"

# Metrics of the exporter the chart ships next to the bundled PostgreSQL (postgres_exporter). Only
# the infrastructure dashboard may use them. NATS and JetStream come from Titan itself (the ledger
# writer's titan_nats_* / titan_jetstream_*), so they are checked like every Titan metric.
EXPORTER_METRICS = {
    "pg_up", "pg_stat_database_numbackends", "pg_stat_database_xact_commit", "pg_database_size_bytes",
}
PROMETHEUS_METRICS = {"up"}

# issue requirement -> alert name
REQUIRED_ALERTS = {
    "breaker tripped": "TitanBreakerTripped",
    "execution down": "TitanExecutionDown",
    "signal->ack p99 high": "TitanSignalAckLatencyHigh",
    "market data stale": "TitanMarketDataStale",
    "ledger lag": "TitanLedgerLag",
    "phase stuck": "TitanPhaseStuck",
    "trading halted": "TitanTradingHalted",
}

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
}


def exported_metric_names() -> set[str]:
    """Every series name Titan processes can expose: the metrics declared in titan.core.metrics
    (expanded with the suffixes the exposition adds) plus the default registry's process/platform
    collectors."""
    from titan.core import metrics

    names: set[str] = set()
    declared = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase | metrics.Tally)]
    assert declared, "titan.core.metrics declares no metrics"
    for metric in declared:
        for family in metric.describe():
            names.update(family.name + s for s in _SUFFIXES[family.type])
    for family in REGISTRY.collect():
        if not family.name.startswith("titan_"):
            names.update(sample.name for sample in family.samples)
    return names


# --- PromQL extraction -----------------------------------------------------------------------

_GRAFANA_RANGE_VARS = re.compile(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}")
_GRAFANA_VARS = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")


def grafana_to_promql(expr: str) -> str:
    expr = _GRAFANA_RANGE_VARS.sub("5m", expr)
    return _GRAFANA_VARS.sub(".*", expr)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects, from the real parser's syntax tree."""
    import promql_parser  # a declared dev dependency: missing is an error, not a skip

    out: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                out.add(node.name)
            else:
                for m in node.matchers.matchers:
                    if m.name == "__name__":
                        out.add(m.value)
            return
        if isinstance(node, promql_parser.MatrixSelector):
            visit(node.vector_selector)
        elif isinstance(node, promql_parser.BinaryExpr):
            visit(node.lhs)
            visit(node.rhs)
        elif isinstance(node, promql_parser.AggregateExpr):
            visit(node.expr)
            if node.param is not None:
                visit(node.param)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                visit(arg)
        elif isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
            visit(node.expr)

    visit(promql_parser.parse(expr))
    return out


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield grafana_to_promql(target["expr"])
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.+),\s*\w+\)", query.strip())
        yield grafana_to_promql(m.group(1) if m else query)


def rule_expressions() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


# --- tests -----------------------------------------------------------------------------------

def test_metric_name_extraction_sees_every_selector() -> None:
    expr = ('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x=~".*"}[5m]))) / on() group_left '
            'max(b) + count_over_time(c[1h:5m]) - absent({__name__="d"}) and -e offset 5m')
    assert metric_names(expr) == {"a_bucket", "b", "c", "d", "e"}
    assert metric_names(grafana_to_promql('sum(rate(x_total{phase=~"$phase"}[$__rate_interval]))')) == {"x_total"}


def test_dashboards_and_rules_name_only_exported_metrics() -> None:
    exported = exported_metric_names()
    assert {"titan_execution_signal_ack_seconds_bucket", "titan_execution_rejects_total",
            "titan_equity_quote", "process_resident_memory_bytes"} <= exported
    problems = []
    used_total: set[str] = set()
    for name, dash in dashboards().items():
        queries = list(dashboard_queries(dash))
        assert queries, f"{name} has no queries"
        allowed = exported | PROMETHEUS_METRICS | (EXPORTER_METRICS if name == INFRA_DASHBOARD else set())
        for q in queries:
            used = metric_names(q)
            assert used, f"{name}: query selects no metric: {q}"
            used_total |= used
            problems += [f"{name}: {m} in {q}" for m in sorted(used - allowed)]
    for alert, expr in rule_expressions():
        used = metric_names(expr)
        assert used, alert
        problems += [f"rule {alert}: {m}" for m in sorted(used - exported - PROMETHEUS_METRICS)]
    assert not problems, "metrics that Titan does not export:\n" + "\n".join(problems)
    # the four dashboards cover the subjects
    for m in ("titan_equity_quote", "titan_pnl_quote", "titan_allocation_weight", "titan_breaker_tripped",
              "titan_execution_signal_ack_seconds_bucket", "titan_execution_rejects_total",
              "titan_phase_signals_total", "titan_phase_trades_closed_total", "titan_ledger_lag_seconds",
              "titan_brain_reconciles_total", "titan_nats_connections", "titan_nats_in_messages_total",
              "titan_jetstream_consumer_pending", "titan_jetstream_consumer_ack_pending",
              "titan_jetstream_consumer_redelivered", "titan_jetstream_stream_messages", "pg_up"):
        assert m in used_total, m


def test_exporter_metrics_only_with_the_exporters_the_chart_ships() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["postgresql"]["bundled"]["exporter"]["enabled"] is True
    # prometheus-nats-exporter is optional (off by default): nothing may depend on its series
    assert values["nats"]["bundled"]["exporter"]["enabled"] is False
    nats_exporter = re.compile(r"(gnatsd|jetstream)_")
    queries = [q for dash in dashboards().values() for q in dashboard_queries(dash)]
    queries += [expr for _, expr in rule_expressions()]
    assert not [q for q in queries if any(nats_exporter.match(m) for m in metric_names(q))]


def test_dashboards_are_well_formed() -> None:
    found = dashboards()
    assert set(found) == {"titan-overview.json", "titan-execution.json", "titan-phases.json", INFRA_DASHBOARD}
    uids = [d["uid"] for d in found.values()]
    assert len(set(uids)) == len(uids)
    for name, dash in found.items():
        assert dash["title"].startswith("Titan / ")
        assert any(v["type"] == "datasource" and v["name"] == "datasource" for v in dash["templating"]["list"])
        ids = [p["id"] for p in dash["panels"]]
        assert len(set(ids)) == len(ids), name
        for p in dash["panels"]:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (name, p["title"])
            if p["type"] != "row":
                assert p["datasource"]["uid"] == "${datasource}", (name, p["title"])
                assert p["targets"], (name, p["title"])


def test_promtool_check_rules() -> None:
    promtool = require("promtool")
    proc = run(promtool, "check", "rules", str(RULES))
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_promtool_test_rules() -> None:
    promtool = require("promtool")
    assert RULE_TESTS
    proc = run(promtool, "test", "rules", *map(str, RULE_TESTS))
    out = proc.stdout + proc.stderr
    assert out.count("SUCCESS") == len(RULE_TESTS) and "FAILED" not in out


def _alert_tests() -> dict[str, dict[str, int]]:
    """alertname -> {"firing": n, "silent": n} across the promtool test files."""
    seen: dict[str, dict[str, int]] = {}
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert [Path(f).name for f in doc["rule_files"]] == [RULES.name]
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                counts = seen.setdefault(check["alertname"], {"firing": 0, "silent": 0})
                counts["firing" if check.get("exp_alerts") else "silent"] += 1
    return seen


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    alerts = {name for name, _ in rule_expressions()}
    assert set(REQUIRED_ALERTS.values()) <= alerts
    tested = _alert_tests()
    for alert in alerts:
        assert tested.get(alert, {}).get("firing", 0) >= 1, f"{alert}: no promtool test where it fires"
        assert tested[alert]["silent"] >= 1, f"{alert}: no promtool test where it stays silent"


def test_alerts_have_severity_and_text() -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
