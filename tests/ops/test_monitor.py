"""Monitoring on prediction logs built in the test: verdicts, report files, exit status and the trigger.

The "model" here is the demo generator's own churn model before any drift (demo.world.churn_log_odds),
and its reference statistics come from the same code `train` uses, so the tests need no training run.
"""

from __future__ import annotations

import json
import shlex
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from demo.generate import generate_month
from demo.world import churn_log_odds
from mlcore.cbpe import fit_calibration
from mlcore.predlog_schema import metadata as log_tables
from ops.monitor.judge import EXIT_BREACH, MonitorParams
from ops.monitor.run import main, run_monitor
from ops.monitor.trigger import Persistence, decide_trigger
from pipeline.train import feature_schema, reference_statistics
from tests.support.factories import default_params
from tests.support.paths import TEST_PARAMS

SEED = 20240101
VERSION = "aaaaaaaaaaaa"
NOW = datetime(2026, 3, 1, tzinfo=UTC)
CFG = MonitorParams(
    window_days=30,
    min_predictions=300,
    min_labels=150,
    performance_floors={"roc_auc": 0.7, "f1": 0.25},
    psi_threshold=0.2,
    p_value=0.01,
    max_drifted_share=0.25,
    prediction_psi_threshold=0.2,
    max_invalid_fraction=0.01,
    time_buckets=5,
    min_bucket_labels=30,
    cooldown_hours=24,
)


def old_model_proba(frame: pd.DataFrame) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-churn_log_odds(frame, concept_drift=0.0)))


def served_metadata() -> dict:
    """What monitoring reads of the served model: the demo generator's churn model and its reference statistics."""
    schema = default_params().schema
    train = pd.concat([generate_month(m, 1500, SEED) for m in ("2025-01", "2025-02")], ignore_index=True)
    return {
        "model_version": VERSION,
        "threshold": 0.5,
        "features": feature_schema(schema),
        "reference": {
            **reference_statistics(train[schema.feature_names], old_model_proba(train), schema, 1000, 0),
            "calibration": fit_calibration(train["churned"].to_numpy(), old_model_proba(train)),
        },
        "metrics": {"test": {"roc_auc": 0.8, "f1": 0.5}},
    }


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model")
    (out / "metadata.json").write_text(json.dumps(served_metadata()), encoding="utf-8")
    return out


def create_log(url: str) -> sa.Engine:
    """The prediction log's tables as the service writes them (mlcore.predlog_schema, docs/contracts.md)."""
    engine = sa.create_engine(url)
    log_tables.drop_all(engine)
    log_tables.create_all(engine)
    return engine


def replay(
    engine: sa.Engine,
    frame: pd.DataFrame,
    *,
    version: str = VERSION,
    label_every: int = 2,
    end: datetime = NOW,
    days: float = 10,
    delay_hours: float = 6,
) -> None:
    """Log one prediction per row over `days` before `end`; every `label_every`-th row gets its label."""
    names = default_params().schema.feature_names
    proba = old_model_proba(frame)
    records = json.loads(frame[names].to_json(orient="records"))
    times = [
        end - timedelta(days=days) + timedelta(days=days) * (i + 0.5) / len(frame) for i in range(len(frame))
    ]
    rows, labels = [], []
    for i, (record, p, label, t) in enumerate(zip(records, proba, frame["churned"], times, strict=True)):
        pid = str(uuid.uuid4())
        rows.append(
            {
                "prediction_id": pid,
                "created_at": t,
                "model_version": version,
                "features": record,
                "probability": float(p),
                "prediction": int(p >= 0.5),
            }
        )
        if label_every and i % label_every == 0:
            labels.append(
                {"prediction_id": pid, "label": int(label), "received_at": t + timedelta(hours=delay_hours)}
            )
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        conn.execute(meta.tables["predictions"].insert(), rows)
        if labels:
            conn.execute(meta.tables["feedback"].insert(), labels)


def run(model_dir: Path, url: str, tmp_path: Path, **kwargs) -> dict:
    kwargs.setdefault("now", NOW)
    return run_monitor(CFG, model_dir, url, tmp_path / "report", state_path=tmp_path / "state.json", **kwargs)


def test_normal_traffic_is_healthy_with_performance_drift_and_report(model_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    replay(create_log(url), generate_month("2025-06", 1200, SEED))
    verdict = run(model_dir, url, tmp_path)
    assert verdict["status"] == "healthy" and verdict["exit_code"] == 0 and verdict["reasons"] == []
    traffic = verdict["traffic"]
    assert traffic["predictions"] == 1200 and traffic["labelled"] == 600
    assert traffic["label_coverage"] == pytest.approx(0.5)
    assert traffic["label_delay_hours"]["median"] == pytest.approx(6.0)
    assert verdict["performance"]["judged"] and verdict["performance"]["metrics"]["roc_auc"] > 0.75
    assert len(verdict["performance"]["over_time"]) == 5
    assert verdict["drift"]["drifted"] == [] and not verdict["drift"]["prediction"]["drifted"]
    assert verdict["trigger"] == {"action": "none", "command": None}
    report = tmp_path / "report"
    assert json.loads((report / "verdict.json").read_text())["status"] == "healthy"
    text = (report / "report.md").read_text()
    assert "# Monitoring report: HEALTHY" in text and "| roc_auc |" in text
    for image in ("performance_over_time.png", "drift.png"):
        assert (report / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({image})" in text


def test_drifted_traffic_breaches_naming_features_and_triggers(model_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    replay(create_log(url), generate_month("2025-06", 1200, SEED, covariate_drift=1.0, concept_drift=1.0))
    marker = tmp_path / "triggered.txt"
    script = f"import os; open({str(marker)!r}, 'a').write(os.environ['MONITOR_REASON'] + '\\n')"
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"
    verdict = run(model_dir, url, tmp_path, trigger_command=command)
    assert verdict["status"] == "breach" and verdict["exit_code"] == EXIT_BREACH
    codes = {r["code"] for r in verdict["reasons"]}
    assert codes == {"performance", "feature_drift", "prediction_drift"}
    assert {"internet_service", "monthly_charges", "support_tickets"} <= set(verdict["drift"]["drifted"])
    assert "roc_auc" in verdict["performance"]["failed"]
    assert verdict["trigger"]["action"] == "trigger" and verdict["trigger"]["returncode"] == 0
    assert marker.read_text().strip() == verdict["summary"]
    assert "internet_service" in (tmp_path / "report" / "report.md").read_text()


def test_the_same_breach_triggers_once_per_cooldown_and_again_for_a_new_model(
    model_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    replay(create_log(url), generate_month("2025-06", 1200, SEED, covariate_drift=1.0, concept_drift=1.0))
    marker = tmp_path / "n.txt"
    command = f"echo x >> {shlex.quote(str(marker))}"
    first = run(model_dir, url, tmp_path, trigger_command=command)
    second = run(model_dir, url, tmp_path, trigger_command=command, now=NOW + timedelta(hours=2))
    assert first["trigger"]["action"] == "trigger"
    assert second["status"] == "breach" and second["trigger"]["action"] == "already_triggered"
    assert marker.read_text().count("x") == 1
    later = run(model_dir, url, tmp_path, trigger_command=command, now=NOW + timedelta(hours=25))
    assert later["trigger"]["action"] == "trigger" and marker.read_text().count("x") == 2
    state = json.loads((tmp_path / "state.json").read_text())
    assert [t["key"] for t in state["triggers"]] == [first["trigger"]["key"]] * 2
    assert first["trigger"]["key"].startswith(f"{VERSION}:")


def test_too_little_traffic_is_insufficient_data_not_an_alarm(model_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    replay(create_log(url), generate_month("2025-06", 100, SEED, covariate_drift=1.0, concept_drift=1.0))
    verdict = run(model_dir, url, tmp_path, trigger_command="false")
    assert verdict["status"] == "insufficient_data" and verdict["exit_code"] == 0
    assert verdict["reasons"] == [] and "only 100 predictions" in verdict["summary"]
    assert verdict["trigger"]["action"] == "none" and not (tmp_path / "state.json").exists()
    assert "INSUFFICIENT DATA" in (tmp_path / "report" / "report.md").read_text()


def test_too_few_labels_leaves_performance_unjudged_but_still_checks_drift(
    model_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = create_log(url)
    replay(engine, generate_month("2025-06", 1000, SEED), label_every=20)
    healthy_drift = run(model_dir, url, tmp_path)
    assert healthy_drift["status"] == "insufficient_data" and not healthy_drift["performance"]["judged"]
    assert "50 labelled predictions" in healthy_drift["summary"]

    replay(create_log(url), generate_month("2025-06", 1000, SEED, covariate_drift=1.5), label_every=0)
    drifted = run(model_dir, url, tmp_path)
    assert drifted["status"] == "breach" and {r["code"] for r in drifted["reasons"]} >= {"feature_drift"}


def test_only_the_served_model_version_inside_the_window_is_judged(model_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = create_log(url)
    replay(engine, generate_month("2025-06", 800, SEED))
    # An older model's drifted traffic, and traffic from before the window: neither counts.
    replay(engine, generate_month("2025-07", 500, SEED, 1.0, 1.0), version="bbbbbbbbbbbb")
    replay(engine, generate_month("2025-08", 500, SEED, 1.0, 1.0), end=NOW - timedelta(days=40))
    verdict = run(model_dir, url, tmp_path)
    assert verdict["status"] == "healthy", verdict["summary"]
    assert verdict["traffic"]["predictions"] == 800
    assert verdict["traffic"]["other_model_versions"] == {"bbbbbbbbbbbb": 500}


def test_unreadable_log_rows_are_counted_and_breach_above_the_limit(model_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = create_log(url)
    replay(engine, generate_month("2025-06", 800, SEED))
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        conn.execute(
            meta.tables["predictions"].insert(),
            [
                {
                    "prediction_id": f"bad-{i}",
                    "created_at": NOW - timedelta(days=1),
                    "model_version": VERSION,
                    "features": {"tenure_months": 3},
                    "probability": 0.5,
                    "prediction": 1,
                }
                for i in range(20)
            ],
        )
    verdict = run(model_dir, url, tmp_path)
    assert verdict["traffic"]["invalid_rows"] == 20 and verdict["traffic"]["predictions"] == 800
    assert [r["code"] for r in verdict["reasons"]] == ["invalid_rows"]


@pytest.mark.postgres
def test_reads_a_postgresql_log(model_dir: Path, tmp_path: Path, postgres_url: str) -> None:
    replay(
        create_log(postgres_url), generate_month("2025-06", 600, SEED, covariate_drift=1.0, concept_drift=1.0)
    )
    verdict = run(model_dir, postgres_url, tmp_path)
    assert verdict["status"] == "breach" and verdict["traffic"]["predictions"] == 600
    assert verdict["traffic"]["label_delay_hours"]["median"] == pytest.approx(6.0)
    assert "internet_service" in verdict["drift"]["drifted"]


def write_params(tmp_path: Path, **overrides) -> Path:
    raw = yaml.safe_load(TEST_PARAMS.read_text())
    raw["monitor"].update(overrides)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_cli_exit_status_and_github_outputs(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    replay(
        create_log(url),
        generate_month("2025-06", 800, SEED, covariate_drift=1.0, concept_drift=1.0),
        end=datetime.now(UTC),
    )
    params = write_params(
        tmp_path, min_predictions=300, min_labels=150, state_file=str(tmp_path / "state.json")
    )
    outputs, summary = tmp_path / "out.txt", tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("MONITOR_TRIGGER_COMMAND", raising=False)
    argv = [
        "--params",
        str(params),
        "--model",
        str(model_dir),
        "--log-url",
        url,
        "--out",
        str(tmp_path / "r"),
        "--github",
    ]
    assert main(argv) == EXIT_BREACH
    lines = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert lines["status"] == "breach" and lines["trigger"] == "true" and "drifted" in lines["reason"]
    assert summary.read_text().startswith("# Monitoring report: BREACH")
    # Dispatched already: the next scheduled run reports the breach but does not ask for another retrain.
    assert main(argv) == EXIT_BREACH
    assert outputs.read_text().splitlines()[-2] == "trigger=false"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"performance_floors": {"auc": 0.7}}, "monitor.performance_floors.auc: unknown metric"),
        ({"psi_threshold": -1}, "monitor.psi_threshold"),
        ({"window_dayz": 3}, "monitor.window_dayz"),
    ],
)
def test_bad_monitor_params_fail_with_one_line(
    tmp_path: Path, override: dict, message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["--params", str(write_params(tmp_path, **override))]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_log_table_is_a_clear_error(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    params = write_params(tmp_path)
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert (
        main(
            [
                "--params",
                str(params),
                "--model",
                str(model_dir),
                "--log-url",
                url,
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "prediction log sqlite:///" in capsys.readouterr().err


@pytest.mark.parametrize(("url", "ready"), [("sqlite:///x.db", "true"), ("", "false")])
def test_preflight_tells_the_workflow_whether_a_log_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, url: str, ready: str
) -> None:
    outputs = tmp_path / "out.txt"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("PREDICTION_LOG_URL", url)
    assert main(["--preflight"]) == 0
    assert outputs.read_text() == f"ready={ready}\n"
    assert ("::notice title=Monitoring skipped::" in capsys.readouterr().out) == (ready == "false")


def test_report_only_neither_records_nor_runs_a_trigger(model_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    replay(create_log(url), generate_month("2025-06", 800, SEED, covariate_drift=1.0, concept_drift=1.0))
    verdict = run(model_dir, url, tmp_path, trigger_command="false", trigger=False)
    assert verdict["status"] == "breach" and verdict["trigger"]["action"] == "disabled"
    assert not (tmp_path / "state.json").exists()


def breach_of(version: str = VERSION) -> dict:
    return {"status": "breach", "model_version": version, "reasons": [{"code": "feature_drift"}]}


def runs(*statuses: str, version: str = VERSION) -> dict:
    return {
        "triggers": [],
        "runs": [{"at": NOW.isoformat(), "model_version": version, "status": s} for s in statuses],
    }


@pytest.mark.parametrize(
    ("earlier", "action", "count"),
    [
        ((), "not_persistent", 1),  # one bad window is not enough
        (("healthy", "healthy"), "not_persistent", 1),
        (("breach",), "trigger", 2),
        (("breach", "healthy"), "trigger", 2),
        (("breach", "healthy", "healthy"), "not_persistent", 1),  # the old breach fell out of the last 3
    ],
)
def test_a_breach_triggers_only_when_it_held_in_n_of_the_last_m_runs(
    earlier: tuple, action: str, count: int
) -> None:
    rule = Persistence(breaches=2, of_last=3)
    decided = decide_trigger(breach_of(), runs(*earlier), 24, NOW, rule)
    assert decided["action"] == action
    if action == "not_persistent":
        assert (decided["breaches"], decided["breaches_needed"], decided["of_last"]) == (count, 2, 3)


def test_persistence_counts_only_the_same_models_runs_and_needs_the_latest_to_breach() -> None:
    rule = Persistence(breaches=2, of_last=3)
    other = runs("breach", "breach", version="bbbbbbbbbbbb")  # the previous model's breaches
    assert decide_trigger(breach_of(), other, 24, NOW, rule)["action"] == "not_persistent"
    healthy_now = {**breach_of(), "status": "healthy"}
    assert decide_trigger(healthy_now, runs("breach", "breach"), 24, NOW, rule)["action"] == "none"
    assert decide_trigger(breach_of(), runs(), 24, NOW)["action"] == "trigger"  # default 1 of 1: as before


def test_persistence_more_breaches_than_runs_is_refused() -> None:
    with pytest.raises(ValueError, match=r"breaches \(3\) cannot exceed of_last \(2\)"):
        Persistence(breaches=3, of_last=2)


def test_monitoring_runs_accumulate_the_evidence_and_the_second_bad_window_triggers(
    model_dir: Path, tmp_path: Path
) -> None:
    drifted, normal, thin = (f"sqlite:///{tmp_path / name}" for name in ("drift.db", "normal.db", "thin.db"))
    replay(create_log(drifted), generate_month("2025-06", 1200, SEED, covariate_drift=1.0, concept_drift=1.0))
    replay(create_log(normal), generate_month("2025-06", 1200, SEED))
    replay(create_log(thin), generate_month("2025-06", 100, SEED))
    cfg = CFG.model_copy(update={"trigger_persistence": Persistence(breaches=2, of_last=3)})
    marker = tmp_path / "n.txt"
    command = f"echo x >> {shlex.quote(str(marker))}"

    def monitor(url: str, hours: int) -> dict:
        return run_monitor(
            cfg,
            model_dir,
            url,
            tmp_path / "report",
            trigger_command=command,
            state_path=tmp_path / "state.json",
            now=NOW + timedelta(hours=hours),
        )

    first = monitor(drifted, 0)
    assert first["trigger"]["action"] == "not_persistent" and not marker.exists()
    report = (tmp_path / "report" / "report.md").read_text()
    assert "not yet**: a breach in 1 of the last 3 judged runs" in report
    assert monitor(thin, 1)["status"] == "insufficient_data"  # no evidence either way
    assert monitor(normal, 2)["trigger"]["action"] == "none"
    third = monitor(drifted, 3)
    assert third["trigger"]["action"] == "trigger" and marker.read_text().count("x") == 1
    assert monitor(drifted, 4)["trigger"]["action"] == "already_triggered"  # the cool-down still holds
    state = json.loads((tmp_path / "state.json").read_text())
    assert [r["status"] for r in state["runs"]] == ["breach", "healthy", "breach", "breach"]


def estimated(verdict: dict) -> tuple[dict, dict]:
    labelled = verdict["estimated"]["labelled"]
    return labelled["estimated"], labelled["realised"]


def test_performance_is_estimated_before_labels_and_matches_the_labels_that_came(
    model_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    replay(create_log(url), generate_month("2025-06", 4000, SEED, covariate_drift=1.0))  # inputs moved only
    verdict = run(model_dir, url, tmp_path, trigger=False)
    est = verdict["estimated"]
    assert (
        est["window"]["rows"] == 4000
        and est["unlabelled"]["rows"] == 2000
        and est["labelled"]["rows"] == 2000
    )
    guess, truth = estimated(verdict)
    for metric in ("roc_auc", "f1", "accuracy"):
        assert guess[metric] == pytest.approx(truth[metric], abs=0.04), metric
    assert est["unlabelled"]["roc_auc"] == pytest.approx(truth["roc_auc"], abs=0.04)
    assumptions = est["assumptions"]
    assert assumptions["calibrated"] and assumptions["calibration_error_test_window"] < 0.05
    assert 0 < assumptions["outside_training_ranges"]["share"] < 1  # drifted inputs leave the training ranges
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Estimated performance (before labels)" in report and "values training never saw" not in report
    assert "have a value training never saw" in report


def test_concept_drift_is_invisible_to_the_estimate_and_the_report_says_it_can_be(
    model_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    replay(create_log(url), generate_month("2025-06", 4000, SEED, concept_drift=1.0))
    verdict = run(model_dir, url, tmp_path, trigger=False)
    guess, truth = estimated(verdict)
    assert (
        guess["roc_auc"] - truth["roc_auc"] > 0.05
    )  # the labels know better: the estimate assumed no change
    assert "concept drift) is invisible to the estimate" in (tmp_path / "report" / "report.md").read_text()


def test_a_model_without_a_calibration_map_is_estimated_uncalibrated_and_says_so(tmp_path: Path) -> None:
    metadata = served_metadata()
    del metadata["reference"]["calibration"]
    model = tmp_path / "old-model"
    model.mkdir()
    (model / "metadata.json").write_text(json.dumps(metadata))
    url = f"sqlite:///{tmp_path / 'log.db'}"
    replay(create_log(url), generate_month("2025-06", 1200, SEED))
    verdict = run(model, url, tmp_path, trigger=False)
    assert verdict["estimated"]["assumptions"]["calibrated"] is False
    assert "no calibration map in this model's metadata" in (tmp_path / "report" / "report.md").read_text()
