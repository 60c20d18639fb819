"""Embedded infrastructure: `titan infra up|down|status`, real servers, data kept across restarts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest

from titan.core.infra.procs import pid_alive

TITAN = [sys.executable, "-m", "titan.cli"]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="titan-infra-"))
    path.chmod(0o755)
    yield path
    subprocess.run([*TITAN, "infra", "down"], env=_env(path), capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TITAN_")}
    env["TITAN_DATA_DIR"] = str(data_dir)
    return env


def _titan(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TITAN, *args], env=_env(data_dir), capture_output=True, text=True, timeout=180)


def _exports(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if line.startswith("TITAN_"))


async def test_infra_up_down_up_keeps_data(data_dir: Path) -> None:
    up = _titan(data_dir, "infra", "up")
    assert up.returncode == 0, up.stderr
    urls = _exports(up.stdout)
    assert urls["TITAN_PG_DSN"].startswith("postgresql://postgres@127.0.0.1:")
    assert urls["TITAN_NATS_URL"].startswith("nats://127.0.0.1:")

    conn = await asyncpg.connect(urls["TITAN_PG_DSN"])
    await conn.execute("CREATE TABLE keepme (v text); INSERT INTO keepme VALUES ('still here')")
    await conn.close()

    nc = await nats.connect(urls["TITAN_NATS_URL"])
    js = nc.jetstream()
    await js.add_stream(name="ROUNDTRIP", subjects=["roundtrip.>"])
    ack = await js.publish("roundtrip.x", b"hello", headers={"Nats-Msg-Id": "m1"})
    assert ack.seq == 1
    sub = await js.pull_subscribe("roundtrip.>", durable="probe")
    msgs = await sub.fetch(1, timeout=5)
    assert msgs[0].data == b"hello"
    await msgs[0].ack()
    await nc.close()

    status = json.loads(_titan(data_dir, "infra", "status", "--json").stdout)
    assert status["postgres"]["running"] and status["nats"]["running"]
    pids = [status["postgres"]["pid"], status["nats"]["pid"]]

    down = _titan(data_dir, "infra", "down")
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(p) for p in pids), "a server survived `titan infra down`"
    status = json.loads(_titan(data_dir, "infra", "status", "--json").stdout)
    assert not status["postgres"]["running"] and not status["nats"]["running"]

    again = _titan(data_dir, "infra", "up")
    assert again.returncode == 0, again.stderr
    urls2 = _exports(again.stdout)
    conn = await asyncpg.connect(urls2["TITAN_PG_DSN"])
    assert await conn.fetchval("SELECT v FROM keepme") == "still here"
    await conn.close()
    nc = await nats.connect(urls2["TITAN_NATS_URL"])
    info = await nc.jetstream().stream_info("ROUNDTRIP")
    assert info.state.messages == 1
    await nc.close()


def test_infra_up_uses_given_urls_and_starts_nothing(data_dir: Path) -> None:
    env = _env(data_dir) | {
        "TITAN_PG_DSN": "postgresql://postgres@127.0.0.1:1/none",
        "TITAN_NATS_URL": "nats://127.0.0.1:2",
    }
    result = subprocess.run([*TITAN, "infra", "up"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "TITAN_PG_DSN=postgresql://postgres@127.0.0.1:1/none" in result.stdout
    assert "nothing started" in result.stderr
    assert not (data_dir / "infra" / "postgres" / "data").exists()
    assert not (data_dir / "infra" / "nats").exists()


def test_bad_config_names_the_field(data_dir: Path) -> None:
    env = _env(data_dir) | {"TITAN_EXECUTION_PORT": "99999", "TITAN_MODE": "yolo"}
    result = subprocess.run([*TITAN, "infra", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "TITAN_EXECUTION_PORT" in result.stderr
    assert "TITAN_MODE" in result.stderr


def test_titan_up_stops_only_what_it_started(data_dir: Path) -> None:
    """`titan up`'s handle leaves servers it found running alone, and stops the ones it started."""
    from titan.cli.up import InfraHandle
    from titan.core.config import Settings

    settings = Settings(data_dir=data_dir, pg_dsn="", nats_url="")
    assert _titan(data_dir, "infra", "up").returncode == 0
    found = InfraHandle(settings)
    assert found.up().started == [] and found.started == []
    found.down()
    status = json.loads(_titan(data_dir, "infra", "status", "--json").stdout)
    assert status["postgres"]["running"] and status["nats"]["running"]

    assert _titan(data_dir, "infra", "down").returncode == 0
    own = InfraHandle(settings)
    state = own.up()
    assert sorted(state.started) == ["nats", "postgres"] and state.pg_embedded and state.nats_embedded
    status = json.loads(_titan(data_dir, "infra", "status", "--json").stdout)
    pids = [status["postgres"]["pid"], status["nats"]["pid"]]
    own.down()
    assert not any(pid_alive(p) for p in pids)
    assert "started" not in json.loads((data_dir / "infra" / "state.json").read_text())
