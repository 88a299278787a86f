"""The closed loop, end to end with real processes: train, serve, traffic + feedback, monitor, retrain.

In a small copy of the repository (few months of demo data, no hyperparameter search): `make run` trains
a model; gunicorn serves it on loopback; a normal month of traffic with feedback labels goes through the
HTTP API and `make monitor` says healthy; a month with covariate and concept drift goes through it and
`make monitor` reports the breach, names the drifted features and runs the trigger (`make retrain`), whose
challenger, trained on the new data, beats the champion and is promoted.
"""

from __future__ import annotations

import http.client
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from demo.generate import month_records
from tests.support.gunicorn_server import gunicorn
from tests.support.repo import demo_repo, git_commit_all, project_params, run, venv_alias

pytestmark = pytest.mark.slow

SEED = 20240101
ROWS = 1000
NORMAL_MONTH, DRIFTED_MONTH = "2024-11", "2024-12"
# After the drifted month the warehouse holds the outcomes of a drifted quarter (more customers per month):
# enough changed data for a challenger to learn the new behaviour from.
DRIFTED_QUARTER, DRIFTED_ROWS = ("2024-12", "2025-01", "2025-02"), 3000
SMALL_PARAMS = {
    "data": {"start_month": "2024-01", "months": 10, "rows_per_month": ROWS},  # Jan-Oct 2024, no drift
    "extract": {"window_days": 120},  # train on the last four months; the newest 30 days are the test window
    "prepare": {"valid_days": 30, "test_days": 30},
    "tune": {"n_trials": 0},
    "evaluate": {"importance_repeats": 1},
    "monitor": {"min_predictions": 500, "min_labels": 300},
}


class Client:
    """One keep-alive connection to the service, as a real client would use."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, body) -> tuple[int, dict]:
        self.conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        return response.status, json.loads(response.read())


def replay_month(
    port: int,
    feature_names: list[str],
    month: str,
    covariate: float = 0.0,
    concept: float = 0.0,
    batch: int = 250,
) -> int:
    """Send a month of customers to POST /predict, then each outcome to POST /feedback; returns the count."""
    records = month_records(month, ROWS, SEED, covariate, concept)
    client = Client(port)
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        status, body = client.post("/predict", [{k: r[k] for k in feature_names} for r in chunk])
        assert status == 200, body
        for record, prediction in zip(chunk, body["predictions"], strict=True):
            status, answer = client.post(
                "/feedback", {"prediction_id": prediction["prediction_id"], "label": int(record["churned"])}
            )
            assert status == 201, answer
    client.conn.close()
    return len(records)


def test_monitoring_detects_drift_and_the_retrained_challenger_is_promoted(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path / "repo", project_params(SMALL_PARAMS))
    venv = venv_alias(tmp_path)
    make = ["make", f"VENV={venv}"]
    run([*make, "run"], repo)
    git_commit_all(repo, "champion")  # main's dvc.lock names the champion (what production serves)
    champion = json.loads((repo / "model" / "metadata.json").read_text())
    champion_dir = shutil.copytree(repo / "model", tmp_path / "champion")
    names = [f["name"] for f in champion["features"]]
    log_url = f"sqlite:///{repo / 'predictions.db'}"
    env = {"PREDICTION_LOG_URL": log_url, "MONITOR_TRIGGER_COMMAND": f"make VENV={venv} retrain"}

    with gunicorn(repo / "model", log_url, tmp_path / "gunicorn.log", WEB_CONCURRENCY="1") as (_, port):
        # A normal month: healthy.
        normal_start = datetime.now(UTC).isoformat()
        assert replay_month(port, names, NORMAL_MONTH) == ROWS
        run([*make, "monitor", f"MONITOR_ARGS=--start {normal_start}"], repo, env)
        verdict = json.loads((repo / "monitoring" / "verdict.json").read_text())
        assert verdict["status"] == "healthy", verdict["summary"]
        assert verdict["traffic"]["predictions"] == ROWS and verdict["traffic"]["label_coverage"] == 1.0
        assert verdict["performance"]["metrics"]["roc_auc"] > 0.7
        assert verdict["model_version"] == champion["model_version"]

        # A drifted month: the customers change and so does what makes them churn.
        drift_start = datetime.now(UTC).isoformat()
        assert replay_month(port, names, DRIFTED_MONTH, covariate=1.0, concept=1.0) == ROWS

    # The warehouse receives the outcomes: the normal month, then the drifted quarter.
    append = [sys.executable, "-m", "demo.generate", "--params", "params.yaml", "--append-month"]
    run([*append, NORMAL_MONTH], repo)
    for month in DRIFTED_QUARTER:
        drift = ["--rows", str(DRIFTED_ROWS), "--covariate-drift", "1", "--concept-drift", "1"]
        run([*append, month, *drift], repo)

    # `make monitor` fails (make exits 2 for any failed recipe; the monitor's own status is 3: breach).
    result = run([*make, "monitor", f"MONITOR_ARGS=--start {drift_start}"], repo, env, ok=(2,))
    assert "monitor] Error 3" in result.stderr and "running trigger: make" in result.stdout, result.stdout
    verdict = json.loads((repo / "monitoring" / "verdict.json").read_text())
    assert verdict["status"] == "breach" and verdict["exit_code"] == 3
    codes = {r["code"] for r in verdict["reasons"]}
    assert {"performance", "feature_drift"} <= codes, verdict["summary"]
    assert {"internet_service", "monthly_charges"} <= set(verdict["drift"]["drifted"])
    assert "internet_service" in (repo / "monitoring" / "report.md").read_text()
    assert verdict["trigger"]["action"] == "trigger" and verdict["trigger"]["returncode"] == 0, result.stdout

    # The retrain it triggered: the challenger beats the champion on the newest (drifted) test window.
    decision = json.loads((repo / "retrain" / "decision.json").read_text())
    assert decision["trigger"] == verdict["summary"]
    assert decision["decision"] == "promote", decision["reasons"]
    assert decision["champion"]["model_version"] == champion["model_version"]
    challenger, defended = (
        decision["challenger"]["metrics"]["roc_auc"],
        decision["champion"]["metrics"]["roc_auc"],
    )
    assert challenger > defended + 0.1 and challenger >= 0.7, (challenger, defended)
    promoted = json.loads((repo / "model" / "metadata.json").read_text())
    assert promoted["model_version"] == decision["challenger"]["model_version"] != champion["model_version"]

    # The champion's breach again (the next scheduled run, before the new model is deployed): it is
    # already being retrained for, so the trigger does not run a second time.
    result = run(
        [*make, "monitor", f"MONITOR_ARGS=--start {drift_start} --model {champion_dir}"], repo, env, ok=(2,)
    )
    verdict = json.loads((repo / "monitoring" / "verdict.json").read_text())
    assert verdict["trigger"]["action"] == "already_triggered" and "returncode" not in verdict["trigger"]
    assert "running trigger" not in result.stdout
