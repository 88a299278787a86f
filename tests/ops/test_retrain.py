"""Continuous training: champion vs challenger on the same window, the promotion rule, no duplicate proposals.

The end-to-end tests work in a throw-away git + DVC repository with tiny demo data: a champion is trained and
committed on `main`, then later months arrive and `python -m ops.retrain` decides.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ops.retrain.propose import propose
from ops.retrain.rule import PromotionRule, judge
from tests.support.paths import REPO_ROOT
from tests.support.repo import run, tiny_params, write_params

ANY_STATUS = tuple(range(256))


def sh(repo: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cmd, repo, ok=(0,) if check else ANY_STATUS)


def py(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh(repo, sys.executable, *args, check=check)


@pytest.fixture(scope="module")
def champion_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose `main` tracks a champion trained on five months of undrifted data."""
    repo = tmp_path_factory.mktemp("champion") / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO_ROOT / name, repo / name)
    # dvc.yaml names the stage modules as dependencies (the code that runs is the installed package).
    shutil.copytree(
        REPO_ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    write_params(repo, tiny_params())
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "config", "user.email", "test@example.invalid")
    sh(repo, "git", "config", "user.name", "test")
    py(repo, "-m", "dvc", "init", "-q")
    py(repo, "-m", "dvc", "config", "core.analytics", "false")
    py(repo, "-m", "demo.generate", "--params", "params.yaml")
    py(repo, "-m", "dvc", "add", "-q", "data")
    py(repo, "-m", "dvc", "repro", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "champion")
    return repo


@pytest.fixture
def repo(champion_repo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(champion_repo, copy, symlinks=True)
    return copy


def append_months(repo: Path, months: list[str], drift: float, rows: int = 1500) -> None:
    for month in months:
        py(
            repo,
            "-m",
            "demo.generate",
            "--params",
            "params.yaml",
            "--append-month",
            month,
            "--rows",
            str(rows),
            "--concept-drift",
            str(drift),
            "--covariate-drift",
            str(drift),
        )


def retrain(repo: Path, *args: str) -> tuple[dict, str]:
    result = py(repo, "-m", "ops.retrain", *args)
    return json.loads((repo / "retrain/decision.json").read_text(encoding="utf-8")), result.stdout


def head(repo: Path) -> str:
    return sh(repo, "git", "rev-parse", "HEAD").stdout.strip()


# --- end to end ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_drifted_months_promote_the_challenger_once(repo: Path, tmp_path: Path) -> None:
    champion_version = json.loads((repo / "model/metadata.json").read_text())["model_version"]
    append_months(repo, ["2025-06", "2025-07"], drift=1.0)

    decision, out = retrain(repo)

    assert decision["decision"] == "promote", decision["reasons"]
    assert "decision: promote" in out
    assert decision["champion"]["model_version"] == champion_version
    assert decision["challenger"]["metrics"]["roc_auc"] > decision["champion"]["metrics"]["roc_auc"] + 0.01
    assert decision["data"]["state"] == "recorded a new data version (dvc add)"
    data = json.loads((repo / "metrics/data.json").read_text())
    assert decision["data"]["snapshot_sha256"] == data["snapshot_sha256"]
    assert data["cutoff"] == "2025-07-31"
    assert decision["branch"] == f"retrain/{data['snapshot_sha256'][:12]}"
    report = (repo / "retrain/report.md").read_text()
    assert "Retrain decision: **promote**" in report
    # ... followed by the pull-request report against main, its images beside it
    assert "### Against main's committed outputs" in report
    assert "](pr-report/roc.png)" in report
    assert (repo / "retrain/pr-report/roc.png").read_bytes().startswith(b"\x89PNG")

    # The lineage record of the promoted model names its data, params and code revision.
    record = json.loads((repo / decision["lineage_record"]).read_text())
    assert record["model_version"] == decision["challenger"]["model_version"] != champion_version
    assert record["data"]["snapshot_sha256"] == data["snapshot_sha256"]
    assert record["data"]["window_end"] == "2025-08-01T00:00:00"
    data_dvc = yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]["md5"]
    assert record["data"]["data_dvc_md5"] == data_dvc
    assert record["params"]["model_type"] == "hist_gradient_boosting"
    assert record["params"]["hyperparameters"]["max_iter"] == 60
    metadata = json.loads((repo / "model/metadata.json").read_text())
    assert record["code"] == {"revision": head(repo), "dirty": False, "sha256": metadata["code"]["sha256"]}
    assert record["decision"]["decision"] == "promote"
    assert record["metrics"]["test_window"] == decision["challenger"]["metrics"]
    assert "lineage" not in metadata  # nothing of the run in model/: its hash stays reproducible

    # Proposing: a branch named from the data hash with data.dvc, dvc.lock, metrics and the lineage record.
    remote = tmp_path / "remote.git"
    sh(tmp_path, "git", "init", "-q", "--bare", str(remote))
    sh(repo, "git", "remote", "add", "origin", str(remote))
    promoted = dict(decision)
    result = py(repo, "-m", "ops.retrain", "propose", "--no-pr", "--no-dvc-push")
    assert f"pushed {decision['branch']}" in result.stdout
    files = sh(repo, "git", "show", "--name-only", "--format=", decision["branch"]).stdout.split()
    assert {"data.dvc", "dvc.lock", "metrics/data.json", decision["lineage_record"]} <= set(files)
    assert sh(repo, "git", "status", "--porcelain", "--", "dvc.lock", "data.dvc").stdout == ""

    # The same data again: no retraining and no second proposal.
    decision, out = retrain(repo)
    assert decision["decision"] == "skip"
    assert "already proposed" in decision["reasons"][0]
    assert decision["challenger"] is None
    sh(repo, "git", "switch", "-q", "main")
    assert "already proposed" in propose(
        repo, promoted, repo / "retrain/report.md", push=False, open_pr=False
    )
    heads = sh(repo, "git", "ls-remote", "--heads", str(remote)).stdout.strip().splitlines()
    assert len(heads) == 1


@pytest.mark.slow
def test_underfitting_challenger_is_rejected_with_the_reason(repo: Path) -> None:
    append_months(repo, ["2025-06"], drift=0.0)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["model"]["defaults"].update(max_iter=1, learning_rate=0.01)  # one shallow boosting step: underfits
    write_params(repo, params)

    decision, out = retrain(repo)

    assert decision["decision"] == "reject"
    assert "decision: reject" in out
    failed = {c["metric"] for c in decision["checks"] if not c["passed"]}
    assert {"roc_auc", "log_loss"} <= failed
    assert any(r.endswith("(< 0.01) (promotion.min_improvement)") for r in decision["reasons"])
    assert any("(> tolerance 0.05) (promotion.max_regression.log_loss)" in r for r in decision["reasons"])
    record = json.loads((repo / decision["lineage_record"]).read_text())
    assert record["decision"]["decision"] == "reject"
    report = (repo / "retrain/report.md").read_text()
    assert "Retrain decision: **reject**" in report and "Proposed from branch" not in report
    assert "nothing to propose" in py(repo, "-m", "ops.retrain", "propose").stdout


@pytest.mark.slow
def test_the_champions_own_data_is_skipped_before_training(repo: Path) -> None:
    shutil.rmtree(repo / "model")  # the champion then comes out of the DVC cache (`dvc get --rev main`)
    decision, _ = retrain(repo, "--cutoff", "latest")

    assert decision["decision"] == "skip"
    assert "was trained on this very snapshot" in decision["reasons"][0]
    assert "via dvc get" in decision["champion"]["source"]
    assert not (repo / "model").exists()  # nothing was retrained
    assert not (repo / "lineage").exists()


def fresh_clone(repo: Path, tmp_path: Path) -> Path:
    """What a teammate or a CI run has: a git clone, no DVC cache, no remote, no data/ and no model/."""
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / "data").exists() and not (clone / ".dvc" / "cache").exists()
    return clone


@pytest.mark.slow
def test_a_fresh_clone_reproduces_the_champion_and_verifies_it(repo: Path, tmp_path: Path) -> None:
    clone = fresh_clone(repo, tmp_path)
    recorded = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]["train"]["outs"][0]["md5"]

    decision, _ = retrain(clone)  # `make retrain`, as docs/retraining.md has it

    assert decision["decision"] == "skip"  # the champion's own data, recognised after reproducing it
    assert decision["champion"]["source"] == (
        f"main ({recorded}), reproduced with `dvc repro train` and verified"
    )
    # The reproduction wrote what main records: the clone is still exactly main.
    assert sh(clone, "git", "status", "--porcelain", "--untracked-files=no").stdout == ""


@pytest.mark.slow
def test_the_tracked_model_of_a_fresh_clone_is_reproduced_and_verified(repo: Path, tmp_path: Path) -> None:
    clone = fresh_clone(repo, tmp_path)
    version = json.loads((repo / "model/metadata.json").read_text())["model_version"]
    recorded = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]["train"]["outs"][0]["md5"]

    got = py(clone, "-m", "ops.repo", "get")

    assert f"model: reproduced {recorded} and verified it against dvc.lock" in got.stdout
    assert f"model version: {version}" in got.stdout
    assert sh(clone, "git", "status", "--porcelain", "--untracked-files=no").stdout == ""
    again = py(clone, "-m", "ops.repo", "get")  # now in the workspace: nothing to do
    assert f"model: model/ is already {recorded}" in again.stdout


@pytest.mark.slow
def test_a_lock_that_records_another_model_is_named_with_both_hashes(repo: Path, tmp_path: Path) -> None:
    clone = fresh_clone(repo, tmp_path)
    lock_path = clone / "dvc.lock"
    real = yaml.safe_load(lock_path.read_text())["stages"]["train"]["outs"][0]["md5"]
    forged = "0" * 32 + ".dir"
    lock_path.write_text(lock_path.read_text().replace(real, forged))  # train's output and evaluate's input
    sh(clone, "git", "commit", "-qam", "a hand-edited lock")

    result = py(clone, "-m", "ops.repo", "get", check=False)

    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line == (
        f"error: dvc.lock at HEAD records model/ as {forged}, but reproducing it gave {real}: stage 'train' "
        f"is the first whose output differs (model: {forged} recorded, {real} reproduced). That lock was not "
        "written by this pipeline on these inputs (edited by hand, or by other code): run `dvc repro` and "
        "commit dvc.lock, or configure the DVC remote that holds the recorded model"
    )
    # retraining refuses the same champion with the same line
    sh(clone, "git", "checkout", "-q", "dvc.lock")  # the failed reproduction wrote what it found there
    refused = py(clone, "-m", "ops.retrain", "--cutoff", "latest", check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == line.replace("at HEAD", "at main")


def test_a_bad_cutoff_is_one_clear_error(repo: Path) -> None:
    result = py(repo, "-m", "ops.retrain", "--cutoff", "next tuesday", check=False)
    assert result.returncode == 2
    assert "extract.cutoff: 'next tuesday' is neither 'latest' nor a date" in result.stderr


# --- the promotion rule ----------------------------------------------------------------------------

RULE = PromotionRule(
    primary_metric="roc_auc",
    min_improvement=0.01,
    floors={"roc_auc": 0.7, "log_loss": 0.6},
    max_regression={"recall": 0.05, "log_loss": 0.02},
)
CHAMPION = {"roc_auc": 0.80, "recall": 0.70, "log_loss": 0.50}


@pytest.mark.parametrize(
    ("challenger", "decision", "failed"),
    [
        ({"roc_auc": 0.82, "recall": 0.70, "log_loss": 0.49}, "promote", set()),
        ({"roc_auc": 0.805, "recall": 0.70, "log_loss": 0.49}, "reject", {"roc_auc"}),  # gain below 0.01
        ({"roc_auc": 0.83, "recall": 0.60, "log_loss": 0.49}, "reject", {"recall"}),  # guard: recall -0.10
        ({"roc_auc": 0.83, "recall": 0.70, "log_loss": 0.53}, "reject", {"log_loss"}),  # guard: a loss grows
        ({"roc_auc": 0.83, "recall": 0.66, "log_loss": 0.515}, "promote", set()),  # within both tolerances
    ],
)
def test_judge_applies_improvement_and_guards(challenger, decision, failed) -> None:
    verdict, reasons, checks = judge(CHAMPION, challenger, RULE)
    assert verdict == decision
    assert {c["metric"] for c in checks if not c["passed"]} == failed
    assert len(reasons) == max(1, len(failed))


def test_judge_without_a_champion_applies_only_the_floors() -> None:
    assert judge(None, {"roc_auc": 0.75, "log_loss": 0.55}, RULE)[0] == "promote"
    verdict, reasons, _ = judge(None, {"roc_auc": 0.65, "log_loss": 0.65}, RULE)
    assert verdict == "reject"
    assert reasons == [
        "roc_auc 0.65 < floor 0.7 (promotion.floors.roc_auc)",
        "log_loss 0.65 > floor 0.6 (promotion.floors.log_loss)",
    ]


def test_an_unknown_metric_in_the_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        PromotionRule(primary_metric="auc")
