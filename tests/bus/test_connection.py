"""connect(): reconnects forever once connected, fails clearly (and quietly) when NATS is absent."""

from __future__ import annotations

import logging
import socket

import pytest

from titan.core.bus import connect


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_nats_fails_with_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    url = f"nats://127.0.0.1:{_closed_port()}"
    with caplog.at_level(logging.WARNING, logger="titan.bus"), pytest.raises(ConnectionError, match=url):
        await connect(url, "absent", initial_retries=1)
    refused = [r for r in caplog.records if r.name == "titan.bus"]
    assert len(refused) == 2  # one line per attempt
    assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in refused)


async def test_connected_client_reconnects_forever(nats_url: str) -> None:
    nc = await connect(nats_url, "titan-test-connect")
    try:
        assert nc.is_connected
        assert nc.options["max_reconnect_attempts"] == -1
        assert nc.options["allow_reconnect"] is True
    finally:
        await nc.close()
