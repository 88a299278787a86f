"""The whole pipeline through DVC, in a temporary copy of the repository with a small generated dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.slow
COPIED = ("src", "dvc.yaml", "params.yaml", ".dvc/config", ".dvcignore", ".gitignore", "pyproject.toml")


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONHASHSEED": "0",
    }
    env.pop("OPTUNA_STORAGE", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    for name in COPIED:
        src, dst = REPO_ROOT / name, root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"].update(months=8, rows_per_month=400)
    params["tune"].update(n_trials=3)
    # Small trees: what is checked here (outputs, caching, determinism, experiments) does not depend on their size.
    params["tune"]["search_space"]["max_iter"] = {"type": "int", "low": 10, "high": 40, "step": 10}
    params["model"]["defaults"]["max_iter"] = 40
    params["evaluate"]["importance_repeats"] = 2
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run([sys.executable, "-m", "demo.generate", "--params", "params.yaml"], root)
    run(["dvc", "add", "-q", "data"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "small pipeline"], root)
    return root


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
