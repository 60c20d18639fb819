"""Cluster tests skip only off CI: under CI=true a missing etcd, API server, kubectl or helm fails them."""

from __future__ import annotations

import pytest

from tests.crds.test_cluster import missing


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_missing_part_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"etcd is not installed .*CI=true"):
        missing("etcd is not installed")


def test_a_missing_part_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="etcd is not installed"):
        missing("etcd is not installed")
