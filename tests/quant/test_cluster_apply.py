"""`titan quant approve|rollback|reject --namespace` against a real kube-apiserver + etcd, logged in as
the chart's quant ServiceAccount (its rendered Role, a TokenRequest token): approve merge-patches
TitanPhase.spec.params, rollback restores it, and `kubectl auth can-i` shows the account can patch
TitanPhases but cannot read Secrets or patch the TitanBrain. Marked `cluster`."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from tests.crds.test_cluster import NS, ROOT, kubeconfig, kubectl, service_account_kubeconfig  # noqa: F401
from tests.quant.synthetic import T0, days, regime_evaluator
from titan.cli import quant_cmd
from titan.core.ledger import Ledger
from titan.phases.ai_quant.params import AiQuantParams, tunable_space
from titan.phases.ai_quant.strategy import check_proposal
from titan.quant.proposals import Outcome, QuantJob, Source, record, validate
from titan.quant.walkforward import cached, plan_folds

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def quant_kubeconfig(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """CRDs, the samples, and the chart's quant ServiceAccount/Role/RoleBinding applied for real."""
    helm = shutil.which("helm") or str(ROOT / ".tools" / "bin" / "helm")
    if not Path(helm).exists():
        pytest.skip("helm is not installed")
    for name in ("titanphase.yaml", "titanbrain.yaml"):
        kubectl(kubeconfig, "apply", "-f", str(ROOT / "crds" / name))
    kubectl(kubeconfig, "wait", "--for=condition=established", "--timeout=60s",
            "crd/titanphases.titan.trading", "crd/titanbrains.titan.trading")
    kubectl(kubeconfig, "create", "namespace", NS)
    kubectl(kubeconfig, "apply", "-n", NS, "-f", str(ROOT / "crds" / "samples"))
    rendered = subprocess.run(
        [helm, "template", "titan", str(ROOT / "helm" / "titan"), "--namespace", NS, "--set",
         "quant.enabled=true,quant.search=optuna", "--show-only", "templates/quant.yaml"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    assert {d["kind"] for d in docs} == {"ServiceAccount", "Role", "RoleBinding"}
    kubectl(kubeconfig, "apply", "-n", NS, "-f", "-", stdin=yaml.safe_dump_all(docs))
    return service_account_kubeconfig(kubeconfig, "titan-quant", tmp_path_factory.mktemp("sa") / "kubeconfig")


def can_i(admin: Path, verb: str, resource: str, *extra: str) -> bool:
    proc = kubectl(admin, "auth", "can-i", verb, resource, "-n", NS, *extra,
                   f"--as=system:serviceaccount:{NS}:titan-quant", check=False)
    return proc.stdout.strip() == "yes"


def test_the_quant_account_may_patch_titanphases_and_nothing_more(quant_kubeconfig: Path,
                                                                  kubeconfig: Path) -> None:  # noqa: F811
    assert can_i(kubeconfig, "patch", "titanphases.titan.trading")
    assert can_i(kubeconfig, "list", "titanphases.titan.trading")
    assert can_i(kubeconfig, "get", "titanbrains.titan.trading")
    assert not can_i(kubeconfig, "patch", "titanbrains.titan.trading")
    assert not can_i(kubeconfig, "get", "secrets")
    assert not can_i(kubeconfig, "list", "secrets")
    assert not can_i(kubeconfig, "delete", "titanphases.titan.trading")
    assert not can_i(kubeconfig, "patch", "titanphases.titan.trading", "--subresource=status")
    assert not can_i(kubeconfig, "create", "deployments.apps")
    denied = kubectl(quant_kubeconfig, "get", "secrets", "-n", NS, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr


def cli(kubeconfig_path: Path, pg_dsn: str, data_dir: Path, *args: str) -> Result:
    env = {"KUBECONFIG": str(kubeconfig_path), "TITAN_KUBE_CONTEXT": None, "TITAN_KUBE_NAMESPACE": None,
           "TITAN_PG_DSN": pg_dsn, "TITAN_DATA_DIR": str(data_dir)}
    return CliRunner().invoke(quant_cmd.app, list(args), env=env)


def params_in_cluster(admin: Path) -> dict[str, Any]:
    doc = json.loads(kubectl(admin, "get", "tp", "scavenger", "-n", NS, "-o", "json").stdout)
    return dict(doc["spec"]["params"])


async def test_approve_patches_the_titanphase_and_rollback_restores_it(
        quant_kubeconfig: Path, kubeconfig: Path, ledger: Ledger, pg_dsn: str, tmp_path: Path) -> None:  # noqa: F811
    before = params_in_cluster(kubeconfig)
    config = AiQuantParams(folds=3, min_improved_folds=2, max_drawdown_worsening=0.5)
    job = QuantJob("scavenger", tunable_space("scavenger"), before, config, plan_folds(T0, T0 + days(30), 3, 0.6),
                   cached(regime_evaluator(lambda day: 0.013)))
    guard = check_proposal(job.space, before, {"params": {"stopLossPercent": 0.013}, "rationale": "r"}, 0.5)
    verdict, reason, detail = validate(job, guard)
    outcome = Outcome("p-cluster", Source.GEMINI, reason, detail, guard, verdict)
    assert outcome.accepted, detail
    await record(ledger, job, [outcome], "gemini-test", T0)

    approved = await asyncio.to_thread(cli, quant_kubeconfig, pg_dsn, tmp_path, "approve", "p-cluster",
                                       "--namespace", NS)
    assert approved.exit_code == 0, approved.output
    assert f"cluster:{NS}/scavenger" in approved.output and "version 1" in approved.output
    after = params_in_cluster(kubeconfig)
    assert after == {**before, "stopLossPercent": 0.013}

    rolled = await asyncio.to_thread(cli, quant_kubeconfig, pg_dsn, tmp_path, "rollback", "p-cluster",
                                     "--namespace", NS)
    assert rolled.exit_code == 0, rolled.output
    assert params_in_cluster(kubeconfig) == before
    versions = await ledger.params_versions("scavenger", proposal_id="p-cluster")
    assert [v.action for v in versions] == ["apply", "rollback"]


async def test_cluster_errors_are_one_line(quant_kubeconfig: Path, ledger: Ledger, pg_dsn: str,
                                           tmp_path: Path) -> None:
    result = await asyncio.to_thread(cli, quant_kubeconfig, pg_dsn, tmp_path, "rollback", "p-cluster",
                                     "--kube-context", "nowhere")
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "kube context 'nowhere' is not in" in lines[0], result.output
