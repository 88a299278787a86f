"""The serving image built and run for real with podman (`make image-test`); the harness's pure parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.deliver import image
from tests.support.paths import REPO_ROOT
from tools import image_test

CHECKS = {
    "image labels record the project, revision and model version",
    "GET /health is 200",
    "GET /ready is 200",
    "GET /metadata names the model version",
    "the served model is the expected one",
    "POST /predict with the example record predicts",
    "POST /predict with an invalid record is a 4xx JSON error",
    "no process runs as root",
    "the image's own smoke test passes (the Argo CD PostSync hook's command)",
    "HEALTHCHECK reports healthy",
    "SIGTERM stops it cleanly (exit 0, within the graceful timeout)",
}
# each platform's contract (ops/deliver/platform_checks.py): KServe on the native container, Vertex AI and SageMaker
# each on a container of their own, started with the platform's environment or arguments
PLATFORM_CHECKS = {
    "KServe V1: GET /v1/models/NAME is ready",
    "KServe V1: POST /v1/models/NAME:predict a batch of 3",
    "KServe V2: GET /v2/health/live is 200",
    "KServe V2: GET /v2/health/ready is 200",
    "KServe V2: GET /v2/models/NAME/ready is 200",
    "KServe V2: POST /v2/models/NAME/infer one record",
    "KServe V2: a batch of 3",
    "KServe V2: an invalid record is 422 {error} naming the field",
    "KServe V2: another model name is 404",
    "Vertex AI: GET $AIP_HEALTH_ROUTE is 200",
    "Vertex AI: POST $AIP_PREDICT_ROUTE predicts one instance",
    "Vertex AI: a batch of 3 instances",
    "Vertex AI: an invalid instance is 422 naming the field",
    "SageMaker: GET /ping is 200",
    "SageMaker: POST /invocations predicts one record",
    "MLflow: a dataframe_split batch of 3",
    "MLflow: an invalid record is 422 BAD_REQUEST naming the field",
    *(
        f"{platform}: {check}"
        for platform in ("Vertex AI", "SageMaker")
        for check in (
            "HEALTHCHECK reports healthy",
            "a request in flight at SIGTERM is answered",
            "SIGTERM stops it cleanly (exit 0, within the graceful timeout)",
        )
    ),
}


@pytest.mark.container
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_image_builds_runs_and_passes_every_check(model_dir: Path):
    metadata = json.loads((model_dir / "metadata.json").read_text())
    result = image_test.run_image_test(REPO_ROOT, model_dir, tag="localhost/image-test:pytest")
    print(result.report())
    assert result.passed, result.report()
    assert {c.name for c in result.checks} == CHECKS | PLATFORM_CHECKS
    assert result.labels["io.github.gitops-mlops.model-version"] == metadata["model_version"]
    assert result.size_bytes < 1_000_000_000


def test_the_build_context_holds_only_what_the_image_needs(tmp_path: Path):
    model = tmp_path / "trained"
    model.mkdir()
    (model / "metadata.json").write_text("{}")
    context = image.stage_context(REPO_ROOT, model, tmp_path / "context")
    files = {str(p.relative_to(context)) for p in context.rglob("*") if p.is_file()}
    assert {
        "Dockerfile",
        ".dockerignore",
        "requirements/serve.txt",
        "model/metadata.json",
        "src/mlcore/artifact.py",
        "app/wsgi.py",
        "app/gunicorn.conf.py",
        "src/ops/deliver/smoke.py",
    } <= files
    assert not any(f.startswith("src/ops/") and f not in image.SMOKE_PATHS for f in files)
    assert not any(f.startswith(("data/", ".venv/", "tests/", ".git/")) or "__pycache__" in f for f in files)


def test_dockerignore_keeps_data_caches_and_the_venv_out():
    lines = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # an allow-list: everything is excluded first, then only the image's inputs are let back in
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "Dockerfile",
        "requirements/serve.txt",
        "app",
        "model",
        "src/mlcore",
        "src/ops/__init__.py",
        "src/ops/deliver/__init__.py",
        "src/ops/deliver/smoke.py",
    }


def test_containers_conf_uses_runc_and_the_hosts_limits():
    text = image_test.containers_conf_text(nofile=20000, nproc=32768)
    assert 'runtime = "runc"' in text
    assert 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' in text


def test_the_cli_names_the_missing_model(tmp_path: Path, capsys):
    assert image_test.main(["--model", str(tmp_path / "nothing")]) == 2
    assert f"{tmp_path / 'nothing'}/metadata.json: no model (run `make run`" in capsys.readouterr().err


def test_model_version_is_printed_for_github_outputs(tmp_path: Path, capsys):
    (tmp_path / "metadata.json").write_text('{"model_version": "0123456789ab"}')
    assert image.main(["model-version", "--model", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "model_version=0123456789ab\n"
