"""The adoption proof: a fresh clone becomes someone else's project with `make adopt` and everything still works.

A dataset shaped nothing like the demo (scikit-learn's breast-cancer table, with string ids, a time column,
a derived category, a nullable int and column names with spaces: tests/support/second_dataset.py) is adopted into
a clone of HEAD; then, as the README says: `make run`, the tests that read params.yaml (the data-agnostic ones
and tests/your_project), `make report` against the pre-adoption commit (the contract change is reported and the
gate judges by the floors only), and a served prediction. The wall time from clone to served prediction is
printed (docs/data.md quotes it).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.support.gunicorn_server import gunicorn, request
from tests.support.paths import REPO_ROOT
from tests.support.repo import git_commit_all, run, venv_alias
from tests.support.second_dataset import write_csv

# The suite's modules that read params.yaml or the data before tests/support/params.yaml existed, plus the
# your-project checks: in an adopted clone they must pass unchanged.
DATA_AGNOSTIC = [
    "tests/pipeline/test_config.py",
    "tests/pipeline/test_validate.py",
    "tests/pipeline/test_prepare.py",
    "tests/pipeline/test_extract.py",
    "tests/pipeline/test_train.py",
    "tests/pipeline/test_evaluate.py",
    "tests/pipeline/test_modeling.py",
    "tests/ops/test_report.py",
    "tests/ops/test_monitor.py",
    "tests/your_project/test_params.py",
    "tests/your_project/test_project_name.py",
]


@pytest.mark.slow
def test_a_fresh_clone_adopts_another_dataset_and_serves_it(tmp_path: Path) -> None:
    started = time.monotonic()
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], tmp_path)
    before = run(["git", "rev-parse", "HEAD"], clone).stdout.strip()
    venv = venv_alias(tmp_path)
    make = ["make", f"VENV={venv}"]
    csv = write_csv(tmp_path / "export" / "tumours.csv")

    adopted = run(
        [
            *make,
            "adopt",
            f"DATA={csv}",
            "ID=patient id",
            "TIME=seen at",
            "LABEL=benign",
            "NAME=tumor-risk",
            "FORCE=1",
        ],
        clone,
    )
    assert "size_band" in adopted.stdout and "prior_visits" in adopted.stdout
    summary = run([*make, "run"], clone).stdout
    assert "gate      PASSED" in summary, summary[-2000:]
    run(["git", "config", "user.email", "t@example.invalid"], clone)
    git_commit_all(clone, "adopt the breast-cancer data")

    tests = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", *DATA_AGNOSTIC],
        clone,
        timeout=1200,
    )
    assert " passed" in tests.stdout and "failed" not in tests.stdout, tests.stdout[-3000:]

    report = run([*make, "report", f"BASE={before}", "REPORT_DIR=report"], clone, ok=(0, 1))
    verdict = json.loads((clone / "report/verdict.json").read_text())
    assert verdict["comparable"] is False and verdict["passed"] is True, report.stdout[-2000:]
    assert not [c for c in verdict["checks"] if c["kind"] == "regression"]  # the floors only
    first_lines = "\n".join((clone / "report/report.md").read_text().splitlines()[:8])
    assert "Data contract changed" in first_lines and " -> benign" in first_lines  # the label, named

    record = (
        pd.read_parquet(next((clone / "data").rglob("*.parquet")))
        .drop(columns=["patient_id", "seen_at", "benign"])
        .iloc[0]
    )
    body = {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in record.items()}
    with gunicorn(clone / "model", f"sqlite:///{tmp_path / 'log.db'}", tmp_path / "gunicorn.log") as (
        _,
        port,
    ):
        status, raw = request(port, "POST", "/predict", body)
        served = time.monotonic() - started
        assert status == 200, raw
        [prediction] = json.loads(raw)["predictions"]
        assert 0.0 <= prediction["probability"] <= 1.0
        status, raw = request(port, "POST", "/predict", {**body, "size_band": "enormous"})
        assert status == 422 and b"size_band" in raw  # the adopted contract validates requests
    print(f"\nclone -> make adopt -> make run -> tests -> report -> served prediction: {served:.0f} s")
