"""Model lineage: records, deployment tags and the one-command answer to "what is serving in production?"."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from mlcore.errors import PipelineError
from ops.lineage import build_record, deployments, query, record_deployment, render, run_facts


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def commit_model(
    repo: Path,
    model_md5: str,
    snapshot: str,
    data_md5: str,
    roc_auc: float,
    record_version: str | None = None,
) -> str:
    """Commit what the pipeline commits for a model (dvc.lock, metrics), optionally with a lineage record."""
    lock = {
        "schema": "2.0",
        "stages": {
            "extract": {"deps": [{"path": "data", "md5": data_md5}]},
            "train": {
                "params": {"params.yaml": {"model": {"type": "hist_gradient_boosting", "seed": 42}}},
                "outs": [{"path": "model", "md5": model_md5}],
            },
        },
    }
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock), encoding="utf-8")
    (repo / "metrics").mkdir(exist_ok=True)
    data = {
        "snapshot_sha256": snapshot,
        "rows": 1000,
        "window_start": "2025-01-01T00:00:00",
        "window_end": "2025-06-01T00:00:00",
        "cutoff": "2025-05-31",
    }
    (repo / "metrics/data.json").write_text(json.dumps(data), encoding="utf-8")
    (repo / "metrics/evaluate.json").write_text(json.dumps({"roc_auc": roc_auc}), encoding="utf-8")
    if record_version:
        (repo / "lineage").mkdir(exist_ok=True)
        record = {
            "model_version": record_version,
            "model_md5": model_md5,
            "data": {**data, "data_dvc_md5": data_md5},
            "params": {"model_type": "hist_gradient_boosting", "hyperparameters": {"max_iter": 60}},
            "code": {"revision": "c0de", "dirty": False},
            "metrics": {"test_window": {"roc_auc": roc_auc}},
            "decision": {"decision": "promote", "reasons": ["roc_auc beats the champion"]},
        }
        (repo / f"lineage/{record_version}.json").write_text(json.dumps(record), encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"model {model_md5}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.email", "test@example.invalid")
    git(tmp_path, "config", "user.name", "test")
    return tmp_path


def test_production_names_the_data_and_code_of_the_deployed_model(repo: Path) -> None:
    first = commit_model(repo, "aaa.dir", "1" * 64, "d1.dir", 0.80, record_version="v1v1v1v1v1v1")
    record_deployment(repo, "staging", "sha256:111", "v1v1v1v1v1v1", now=datetime(2026, 1, 1, tzinfo=UTC))
    record_deployment(repo, "production", "sha256:111", "v1v1v1v1v1v1", now=datetime(2026, 1, 2, tzinfo=UTC))
    commit_model(repo, "bbb.dir", "2" * 64, "d2.dir", 0.82, record_version="v2v2v2v2v2v2")
    record_deployment(repo, "staging", "sha256:222", "v2v2v2v2v2v2", now=datetime(2026, 2, 1, tzinfo=UTC))

    production = query(repo, "production")
    assert production["commit"] == first
    assert production["deployment"]["image_digest"] == "sha256:111"
    assert production["model_version"] == "v1v1v1v1v1v1"
    assert production["data"]["snapshot_sha256"] == "1" * 64
    assert production["data"]["data_dvc_md5"] == "d1.dir"
    assert production["params"]["hyperparameters"] == {"max_iter": 60}
    assert production["decision"]["decision"] == "promote"
    assert query(repo, "staging")["data"]["snapshot_sha256"] == "2" * 64
    text = render(production)
    assert text.startswith("production: model v1v1v1v1v1v1 since 2026-01-02T00:00:00+00:00, image sha256:111")
    assert "snapshot 111111111111" in text and "decision  promote" in text


def test_a_model_without_a_record_is_described_from_the_commit(repo: Path) -> None:
    commit = commit_model(repo, "ccc.dir", "3" * 64, "d3.dir", 0.79)
    record_deployment(repo, "production", "sha256:333", "v3v3v3v3v3v3")
    info = query(repo, "production")
    assert info["source"].endswith("(no lineage record)")
    assert info["code"]["revision"] == commit
    assert info["model_md5"] == "ccc.dir"
    assert info["data"]["snapshot_sha256"] == "3" * 64
    assert info["data"]["data_dvc_md5"] == "d3.dir"
    assert info["params"]["model"] == {"type": "hist_gradient_boosting", "seed": 42}
    assert info["metrics"]["test_window"] == {"roc_auc": 0.79}


def test_the_workspace_model_without_a_record_is_described_from_its_metadata(
    repo: Path, model_dir: Path
) -> None:
    # `make lineage` with no ENV or REV: the model in model/, trained but never through a retrain
    shutil.copytree(model_dir, repo / "model")
    commit = commit_model(repo, "ddd.dir", "4" * 64, "d4.dir", 0.81)
    info = query(repo)
    metadata = json.loads((repo / "model/metadata.json").read_text())
    assert info["source"] == "model/metadata.json" and info["decision"] is None
    assert info["model_version"] == metadata["model_version"]
    assert info["code"] == {"revision": commit, "dirty": False, "sha256": metadata["code"]["sha256"]}


def test_the_cli_answers_with_one_command(repo: Path) -> None:
    commit_model(repo, "aaa.dir", "1" * 64, "d1.dir", 0.80, record_version="v1v1v1v1v1v1")
    run = [sys.executable, "-m", "ops.lineage"]
    tag = subprocess.run(
        [
            *run,
            "deployed",
            "--env",
            "production",
            "--image-digest",
            "sha256:111",
            "--model-version",
            "v1v1v1v1v1v1",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert tag.stdout.startswith("deploy/production/")
    shown = subprocess.run(
        [*run, "show", "--env", "production", "--json"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert json.loads(shown.stdout)["data"]["data_dvc_md5"] == "d1.dir"
    missing = subprocess.run([*run, "show", "--env", "qa"], cwd=repo, capture_output=True, text=True)
    assert missing.returncode == 2
    assert "no deployment to 'qa' recorded" in missing.stderr


def test_deployments_are_listed_newest_first_and_bad_names_refused(repo: Path) -> None:
    commit_model(repo, "aaa.dir", "1" * 64, "d1.dir", 0.80)
    for day in (3, 1, 2):
        record_deployment(repo, "production", f"sha256:{day}", "v", now=datetime(2026, 1, day, tzinfo=UTC))
    assert [d["image_digest"] for d in deployments(repo, "production")] == [
        "sha256:3",
        "sha256:2",
        "sha256:1",
    ]
    with pytest.raises(PipelineError, match="--env 'prod uction'"):
        record_deployment(repo, "prod uction", "sha256:1", "v")


def test_run_facts_records_the_data_version_and_uncommitted_code(repo: Path) -> None:
    (repo / "src").mkdir()
    (repo / "src/model.py").write_text("x = 1\n")
    (repo / "data.dvc").write_text(yaml.safe_dump({"outs": [{"md5": "d9.dir", "path": "data"}]}))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "code")
    commit = git(repo, "rev-parse", "HEAD").strip()
    assert run_facts(repo) == {"revision": commit, "data_dvc_md5": "d9.dir", "code_dirty": False}
    (repo / "src/model.py").write_text("x = 2\n")
    assert run_facts(repo)["code_dirty"] is True


def test_a_record_joins_metadata_and_decision() -> None:
    metadata = {
        "model_version": "abc",
        "code": {"sha256": "5" * 64},
        "data": {"snapshot_sha256": "f" * 64, "rows": 10},
        "params": {"model_type": "logistic_regression"},
        "metrics": {"test": {"roc_auc": 0.7}},
    }
    facts = {"revision": "c0de", "code_dirty": False, "data_dvc_md5": "d.dir"}
    decision = {
        "decision": "reject",
        "reasons": ["roc_auc too low"],
        "champion": {"model_version": "old", "metrics": {"roc_auc": 0.8}},
        "challenger": {"model_md5": "m.dir", "metrics": {"roc_auc": 0.7}},
    }
    record = build_record(metadata, decision, facts)
    assert record["data"] == {"snapshot_sha256": "f" * 64, "rows": 10, "data_dvc_md5": "d.dir"}
    assert record["code"] == {"revision": "c0de", "dirty": False, "sha256": "5" * 64}
    assert record["model_md5"] == "m.dir"
    assert record["decision"]["decision"] == "reject"
    assert record["decision"]["champion_model_version"] == "old"
    assert record["metrics"]["champion_on_test_window"] == {"roc_auc": 0.8}
