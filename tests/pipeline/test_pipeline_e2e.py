"""The whole pipeline through DVC, in a temporary copy of the repository with a small generated dataset."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.repo import demo_repo, project_params
from tests.support.repo import run as support_run

pytestmark = pytest.mark.slow
SMALL = {
    "data": {"months": 8, "rows_per_month": 400},
    # Small trees: what is checked here (outputs, caching, determinism, experiments) does not depend on their size.
    "tune": {"n_trials": 3, "search_space": {"max_iter": {"type": "int", "low": 10, "high": 40, "step": 10}}},
    "model": {"defaults": {"max_iter": 40}},
    "evaluate": {"importance_repeats": 2},
}


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return support_run(cmd, cwd, ok=(0,) if check else tuple(range(256)))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return demo_repo(tmp_path_factory.mktemp("repo"), project_params(SMALL))


def test_repro_produces_every_output_and_a_verdict(repo):
    out = run(["dvc", "repro"], repo)
    assert "quality gate" in out.stdout
    for path in (
        "artifacts/snapshot.parquet",
        "artifacts/prepared/test.parquet",
        "model/model.skops",
        "model/metadata.json",
        "metrics/evaluate.json",
        "metrics/gate.json",
        "plots/evaluate/roc.png",
        "plots/tune/optimization_history.png",
        "dvc.lock",
    ):
        assert (repo / path).exists(), path
    data = json.loads((repo / "metrics/data.json").read_text())
    meta = json.loads((repo / "model/metadata.json").read_text())
    assert meta["data"]["snapshot_sha256"] == data["snapshot_sha256"]
    assert json.loads((repo / "metrics/gate.json").read_text())["passed"] in (True, False)
    assert run(["dvc", "status", "-q"], repo, check=False).returncode == 0  # everything up to date


def test_same_seed_gives_same_metrics_and_model_bytes(repo):
    before = (repo / "model/model.skops").read_bytes(), (repo / "metrics/evaluate.json").read_text()
    run(["dvc", "repro", "-f", "tune", "train", "evaluate", "--single-item"], repo)
    after = (repo / "model/model.skops").read_bytes(), (repo / "metrics/evaluate.json").read_text()
    assert before == after


def test_changing_one_param_reruns_only_its_dependents(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["calibration_bins"] = 5
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], repo).stdout
    assert "Running stage 'evaluate'" in out
    for stage in ("extract", "validate", "prepare", "tune", "train"):
        assert f"Running stage '{stage}'" not in out


def test_experiment_with_a_param_override(repo):
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "calibration bins"], repo)
    run(["dvc", "exp", "run", "-S", "tune.n_trials=2", "--name", "fewer-trials"], repo)
    shown = run(["dvc", "exp", "show", "--json"], repo).stdout
    assert "fewer-trials" in shown
