"""BusHealth against the real embedded NATS server: JetStream stream/consumer figures from the
JetStream API, server figures from its /varz, failures counted and logged once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from titan.core.bus import consumer_config
from titan.core.bus.health_metrics import BusHealth, ServerStats
from titan.core.catalog import Catalog, EventKind
from titan.core.infra import NatsServer
from titan.core.infra.procs import free_port

EVENTS = 5


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


@pytest.fixture(scope="module")
def monitor_url(infra_dir: Path, nats_url: str) -> str:
    if os.environ.get("TITAN_NATS_URL"):
        pytest.skip("an external NATS (TITAN_NATS_URL): its monitoring endpoint is not known here")
    url = NatsServer(infra_dir / "nats").monitor_url
    assert url.startswith("http://127.0.0.1:")
    return url


async def _publish(js: JetStreamContext, catalog: Catalog, n: int) -> None:
    for i in range(n):
        await js.publish(catalog.event_subject("execution", EventKind.FILL), f"fill {i}".encode())


async def test_streams_and_consumers_from_the_jetstream_api(bus_js: JetStreamContext, catalog: Catalog) -> None:
    ledger = catalog.ledger_consumer
    await bus_js.add_consumer(ledger.stream, consumer_config(ledger))
    await _publish(bus_js, catalog, EVENTS)
    health = BusHealth(bus_js, catalog)
    await health.refresh()
    events = catalog.events_stream.name
    assert sample("titan_jetstream_stream_messages", stream=events) == EVENTS
    assert (sample("titan_jetstream_stream_bytes", stream=events) or 0) > 0
    assert sample("titan_jetstream_stream_messages", stream=catalog.commands_stream.name) == 0
    labels = {"stream": ledger.stream, "consumer": ledger.durable}
    assert sample("titan_jetstream_consumer_pending", **labels) == EVENTS
    assert sample("titan_jetstream_consumer_ack_pending", **labels) == 0
    # the Brain's durable does not exist here: no series, and not a failure
    brain = {"stream": catalog.brain_consumer.stream, "consumer": catalog.brain_consumer.durable}
    assert sample("titan_jetstream_consumer_pending", **brain) is None
    assert sample("titan_bus_health_failures_total", source="consumer", reason="nats_error") is None

    sub = await bus_js.pull_subscribe_bind(ledger.durable, ledger.stream)
    first, _ = await sub.fetch(2, timeout=5)
    await first.nak()  # delivered again; nothing is acked
    later = []
    while not any(m.metadata.num_delivered == 2 for m in later):  # each fetch waits at most 5 s
        later += await sub.fetch(1, timeout=5)
    fresh = sum(1 for m in later if m.metadata.num_delivered == 1)
    await health.refresh()
    assert sample("titan_jetstream_consumer_pending", **labels) == EVENTS - 2 - fresh
    assert sample("titan_jetstream_consumer_ack_pending", **labels) == 2 + fresh
    assert sample("titan_jetstream_consumer_redelivered", **labels) == 1
    await sub.unsubscribe()


async def test_server_figures_from_varz(bus_js: JetStreamContext, catalog: Catalog, monitor_url: str) -> None:
    health = BusHealth(bus_js, catalog, monitor_url=monitor_url)
    await health.refresh()
    # one server: its name is the only label value
    names = {s.labels["server"] for m in REGISTRY.collect() if m.name == "titan_nats_connections" for s in m.samples}
    assert len(names) == 1
    server = names.pop()
    assert (sample("titan_nats_connections", server=server) or 0) >= 1
    assert (sample("titan_nats_memory_bytes", server=server) or 0) > 0
    before = sample("titan_nats_in_messages_total", server=server) or 0
    await _publish(bus_js, catalog, EVENTS)
    await health.refresh()
    after = sample("titan_nats_in_messages_total", server=server) or 0
    assert after - before >= EVENTS  # followed by the server's increase, not re-added
    assert after < 2 * before + 10 * EVENTS + 1000
    assert sample("titan_nats_slow_consumers_total", server=server) == 0


async def test_an_unreachable_monitoring_endpoint_is_counted_and_logged_once(
    bus_js: JetStreamContext, catalog: Catalog, caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    health = BusHealth(bus_js, catalog, monitor_url=url, timeout_s=1)
    before = sample("titan_bus_health_failures_total", source="server", reason="unreachable") or 0
    with caplog.at_level(logging.INFO, logger="titan.bus.health"):
        for _ in range(3):
            await health.refresh()
    assert sample("titan_bus_health_failures_total", source="server", reason="unreachable") == before + 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and url in warnings[0].getMessage()
    # the JetStream figures are still read
    assert sample("titan_jetstream_stream_messages", stream=catalog.events_stream.name) is not None
    assert health.refreshes == 3


async def test_streams_that_do_not_exist_have_no_series(bus_js: JetStreamContext) -> None:
    missing = Catalog(namespace="nostreamshere")
    await BusHealth(bus_js, missing).refresh()
    assert sample("titan_jetstream_stream_messages", stream=missing.events_stream.name) is None
    assert sample("titan_bus_health_failures_total", source="stream", reason="nats_error") is None


@pytest.mark.parametrize(("field", "value"), [("connections", -1), ("mem", "12"), ("in_msgs", None),
                                              ("slow_consumers", True)])
def test_varz_fields_must_be_counts(field: str, value: object) -> None:
    varz: dict[str, object] = {"server_id": "NABC", "connections": 3, "mem": 1024, "in_msgs": 7, "out_msgs": 9,
                               "slow_consumers": 0}
    assert ServerStats.from_varz(varz) == ServerStats("NABC", 3, 1024, 7, 9, 0)
    with pytest.raises(ValueError, match=field):
        ServerStats.from_varz(varz | {field: value})
