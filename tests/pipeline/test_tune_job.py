"""The Kubernetes Job for distributed tuning renders, validates strictly offline, and runs indexed workers that
read the study's storage URL from a Secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO_ROOT, TEST_PARAMS

TUNE_JOB = REPO_ROOT / "deploy" / "k8s" / "tune-job"


@pytest.fixture(scope="module")
def rendered() -> str:
    return subprocess.run(
        ["kubectl", "kustomize", str(TUNE_JOB)], capture_output=True, text=True, check=True
    ).stdout


def job_of(manifest: str) -> dict:
    return next(d for d in yaml.safe_load_all(manifest) if d["kind"] == "Job")


def validate_strictly(path: Path) -> subprocess.CompletedProcess[str]:
    validate = Path(sys.executable).parent / "kubernetes-validate"
    return subprocess.run([str(validate), "--strict", "--quiet", str(path)], capture_output=True, text=True)


def test_job_validates_strictly_against_the_kubernetes_schemas(rendered, tmp_path):
    path = tmp_path / "tune-job.yaml"
    path.write_text(rendered)
    proc = validate_strictly(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(d["kind"] for d in yaml.safe_load_all(rendered)) == ["ConfigMap", "Job"]


def test_strict_validation_rejects_an_unknown_field(rendered, tmp_path):
    docs = list(yaml.safe_load_all(rendered))
    next(d for d in docs if d["kind"] == "Job")["spec"]["paralelism"] = 3
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    proc = validate_strictly(path)
    assert proc.returncode != 0 and "paralelism" in proc.stdout + proc.stderr


def test_job_runs_n_indexed_workers_with_the_storage_from_a_secret(rendered):
    spec = job_of(rendered)["spec"]
    assert spec["completionMode"] == "Indexed"  # JOB_COMPLETION_INDEX seeds each worker's sampler
    assert spec["parallelism"] == spec["completions"] >= 2
    container = spec["template"]["spec"]["containers"][0]
    storage = next(e for e in container["env"] if e["name"] == "OPTUNA_STORAGE")
    assert "value" not in storage
    assert storage["valueFrom"]["secretKeyRef"] == {"name": "optuna-storage", "key": "url"}
    assert container["args"][0].rstrip().endswith("exec make tune-worker")
    # One fit uses model.threads CPU(s): the pod asks for exactly that.
    params = yaml.safe_load(TEST_PARAMS.read_text())
    assert container["resources"]["requests"]["cpu"] == str(params["model"]["threads"])


def test_workers_check_out_the_configured_revision(rendered):
    docs = list(yaml.safe_load_all(rendered))
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    container = job_of(rendered)["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    assert set(config["data"]) == {"GIT_REPOSITORY", "GIT_REVISION"}
    assert '"$GIT_REVISION"' in container["args"][0]
