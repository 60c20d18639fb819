"""Secrets stay secret. During a full `titan up --headless` run every child's /metrics (and each
phase's /healthz) is scraped; after it, every log (titan up's own, each child's, PostgreSQL's and
NATS's) and those scrapes are searched for every key's bytes (the phase keys and the control key,
as written in the key files). Key files are 0600 in a 0700 folder. The chart mounts every Secret
volume read-only with no access for others, and renders no key material."""

from __future__ import annotations

import json
import stat
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.tools import containers, pod_spec, render, require, workloads

from ..util import wait_for
from .organism import Organism, running_organism

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode(errors="replace")
    except OSError:
        return ""


def endpoints(organism: Organism) -> list[str]:
    info = json.loads((organism.data_dir / "run" / "organism.json").read_text())
    urls = [f"http://127.0.0.1:{port}/metrics" for port in info["metrics"].values()]
    urls += [f"http://127.0.0.1:{port}/healthz" for name, port in info["metrics"].items() if name.startswith("phase-")]
    return urls


def key_forms(path: Path) -> set[str]:
    """The key as stored, and the same bytes as the hex of their text (as a log of raw bytes would show)."""
    text = path.read_text().strip()
    return {text, text.encode().hex(), repr(text.encode())[2:-1]}


async def test_no_key_in_logs_or_metrics() -> None:
    async with running_organism("--source", "sim", "--duration", "120s", prefix="titan-secrets-") as organism:
        await wait_for(lambda: organism.said("phase-scavenger ready") or organism.said("starting organism"),
                       timeout=120, interval=0.2)
        await wait_for(lambda: (organism.data_dir / "run" / "organism.json").exists(), timeout=60, interval=0.2)
        urls = endpoints(organism)

        def all_answer() -> bool:
            return all(scrape(url) for url in urls)

        await wait_for(all_answer, timeout=120, interval=0.5)
        scraped = {url: scrape(url) for url in urls}
        assert await organism.stop() == 0, organism.tail()
        keys_dir = organism.data_dir / "keys"
        key_files = sorted(keys_dir.glob("*.key"))
        assert {p.stem for p in key_files} >= {"control", "scavenger"}, key_files
        assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in key_files)
        texts = {str(p): p.read_text(errors="replace") for p in organism.data_dir.rglob("*.log")}
        texts.update(scraped)
        texts[str(organism.data_dir / "run")] = "\n".join(
            p.read_text(errors="replace") for p in (organism.data_dir / "run").glob("*") if p.is_file())
        assert any("titan_execution" in t for t in scraped.values()) and len(texts) > 8, sorted(texts)
        leaks = [(str(key), where) for key in key_files for form in key_forms(key)
                 for where, text in texts.items() if form in text]
        assert not leaks, leaks


def test_the_chart_mounts_secrets_read_only() -> None:
    require("helm")
    objs = render()
    checked = 0
    for obj in workloads(objs):
        spec = pod_spec(obj)
        secret_volumes = {v["name"]: v["secret"] for v in spec.get("volumes", []) if "secret" in v}
        for volume in secret_volumes.values():
            assert volume.get("defaultMode", 0o644) & 0o037 == 0, (obj["metadata"]["name"], volume)
        for container in containers(spec):
            for mount in container.get("volumeMounts", []):
                if mount["name"] in secret_volumes:
                    assert mount.get("readOnly") is True, (obj["metadata"]["name"], mount)
                    checked += 1
    assert checked >= 1  # execution mounts the phase keys
    assert not [o for o in objs if o.get("kind") == "Secret" and (o.get("data") or o.get("stringData"))]
