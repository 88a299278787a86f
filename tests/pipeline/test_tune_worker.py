"""Distributed tuning: workers sharing one study in a real PostgreSQL finish exactly the budget, and the stage
then reads the finished study."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from mlcore.errors import PipelineError
from pipeline.config import load_params
from pipeline.tune import open_study, prepared_fingerprint, run_tune
from pipeline.tune_worker import claim_trial, main, worker_index
from tests.support.factories import make_snapshot
from tests.support.paths import TEST_PARAMS

N_TRIALS = 8
# A sequential run and two parallel workers sample different trials (distinct seeds); on this tiny data the
# best validation ROC AUC of 8 trials varies by about 0.01 between seeds, so allow twice that.
TOLERANCE = 0.02


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    """(params.yaml, prepared dir) for a tiny, fast search: 8 trials of small boosted trees on 600 rows."""
    raw = yaml.safe_load(TEST_PARAMS.read_text())
    raw["tune"].update(n_trials=N_TRIALS, storage=f"sqlite:///{tmp_path}/studies.db")
    # the study is named after the project: a name of its own per test, a DNS label as project.name must be
    raw["project"]["name"] = f"t{os.getpid()}-{hashlib.sha256(tmp_path.name.encode()).hexdigest()[:12]}"
    raw["tune"]["pruner"]["n_steps"] = 1
    raw["tune"]["search_space"]["max_iter"] = {"type": "int", "low": 10, "high": 40, "step": 10}
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(raw))
    snapshot = make_snapshot(n=600, seed=3)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    snapshot.iloc[:450].to_parquet(prepared / "train.parquet", index=False)
    snapshot.iloc[450:].to_parquet(prepared / "valid.parquet", index=False)
    return params_path, prepared


def start_worker(params_path: Path, prepared: Path, index: int, storage: str) -> subprocess.Popen:
    env = {**os.environ, "OPTUNA_STORAGE": storage, "TUNE_WORKER_INDEX": str(index)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline.tune_worker",
            "--params",
            str(params_path),
            "--prepared",
            str(prepared),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_finish_the_budget_and_the_stage_reads_the_study(
    project, postgres_url, tmp_path, monkeypatch
):
    params_path, prepared = project
    params = load_params(params_path)

    workers = [start_worker(params_path, prepared, index, postgres_url) for index in (0, 1)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    study = optuna.load_study(
        study_name=f"{params.project.name}-{prepared_fingerprint(params, prepared)}", storage=postgres_url
    )
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(N_TRIALS))  # exactly the budget, no duplicate numbers
    assert all(t.state.is_finished() for t in study.trials)
    # Both workers took part (each ran at least one trial), so the work really was shared.
    ran = [int(out.split("ran ")[1].split(" trial")[0]) for out in outputs]
    assert sum(ran) == N_TRIALS and min(ran) >= 1, outputs

    # The stage resumes the finished study: it runs 0 trials and reports the workers' best.
    monkeypatch.setenv("OPTUNA_STORAGE", postgres_url)
    parallel = run_tune(
        params,
        prepared,
        tmp_path / "tune-parallel",
        tmp_path / "parallel.json",
        tmp_path / "parallel.png",
        log_trials=False,
    )
    assert parallel["n_trials_complete"] + parallel["n_trials_pruned"] == N_TRIALS
    assert parallel["best_value"] == pytest.approx(study.best_value)
    assert (
        json.loads((tmp_path / "tune-parallel" / "best_params.json").read_text())
        == parallel["hyperparameters"]
    )

    # A sequential search of the same budget (the stage alone, SQLite) is not better beyond the tolerance.
    monkeypatch.delenv("OPTUNA_STORAGE")
    sequential = run_tune(
        params, prepared, tmp_path / "tune-seq", tmp_path / "seq.json", tmp_path / "seq.png", log_trials=False
    )
    assert sequential["n_trials_complete"] + sequential["n_trials_pruned"] == N_TRIALS
    assert parallel["best_value"] >= sequential["best_value"] - TOLERANCE


@pytest.mark.postgres
def test_a_worker_on_a_complete_study_runs_nothing(project, postgres_url, monkeypatch, capsys):
    params_path, prepared = project
    params = load_params(params_path)
    monkeypatch.setenv("OPTUNA_STORAGE", postgres_url)
    study = open_study(params, prepared_fingerprint(params, prepared), postgres_url)
    for _ in range(N_TRIALS):
        trial = study.ask()
        study.tell(trial, 0.5)

    assert main(["--params", str(params_path), "--prepared", str(prepared), "--worker-index", "3"]) == 0
    assert "ran 0 trial(s)" in capsys.readouterr().out
    assert len(study.trials) == N_TRIALS


def test_claim_trial_counts_running_trials_against_the_budget(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db", direction="maximize")
    lock = __import__("contextlib").nullcontext
    first = claim_trial(study, 2, lock)
    second = claim_trial(study, 2, lock)
    assert (first.number, second.number) == (0, 1)
    assert claim_trial(study, 2, lock) is None  # both still running: the budget is taken
    study.tell(first, 0.7)
    assert claim_trial(study, 2, lock) is None
    assert len(study.trials) == 2


@pytest.mark.slow
def test_sqlite_workers_share_the_budget(project, monkeypatch):
    """Without OPTUNA_STORAGE the worker uses params.yaml's SQLite file, guarded by a file lock."""
    params_path, prepared = project
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    workers = [start_worker(params_path, prepared, index, "") for index in (0, 1)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    params = load_params(params_path)
    study = optuna.load_study(
        study_name=f"{params.project.name}-{prepared_fingerprint(params, prepared)}",
        storage=params.tune.storage,
    )
    assert sorted(t.number for t in study.trials) == list(range(N_TRIALS))


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, {}, 0),
        (None, {"JOB_COMPLETION_INDEX": "4"}, 4),
        (None, {"TUNE_WORKER_INDEX": "2", "JOB_COMPLETION_INDEX": "4"}, 2),
        (5, {"TUNE_WORKER_INDEX": "2"}, 5),
    ],
)
def test_worker_index_comes_from_flag_then_environment(flag, env, expected):
    assert worker_index(flag, env) == expected


@pytest.mark.parametrize(
    ("flag", "env", "message"),
    [
        (None, {"TUNE_WORKER_INDEX": "two"}, "TUNE_WORKER_INDEX: expected a non-negative integer, got 'two'"),
        (-1, {}, "--worker-index: expected a non-negative integer, got -1"),
    ],
)
def test_bad_worker_index_is_one_clear_error(flag, env, message):
    with pytest.raises(PipelineError, match=message):
        worker_index(flag, env)


def test_missing_prepared_data_and_unreachable_storage_exit_2(project, tmp_path, monkeypatch, capsys):
    params_path, prepared = project
    assert main(["--params", str(params_path), "--prepared", str(tmp_path / "nowhere")]) == 2
    assert "nowhere/train.parquet: not found; run `dvc repro prepare` first" in capsys.readouterr().err
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql+psycopg://u:secret@127.0.0.1:1/none")
    assert main(["--params", str(params_path), "--prepared", str(prepared)]) == 2
    err = capsys.readouterr().err
    assert "cannot open Optuna storage '127.0.0.1:1/none'" in err and "secret" not in err


def test_require_shared_storage_refuses_sqlite(project, monkeypatch, capsys):
    params_path, prepared = project
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    args = ["--params", str(params_path), "--prepared", str(prepared), "--require-shared-storage"]
    assert main(args) == 2
    assert "OPTUNA_STORAGE: not set" in capsys.readouterr().err


def test_print_matrix_lists_worker_indices(capsys):
    assert main(["--print-matrix", "3"]) == 0
    assert json.loads(capsys.readouterr().out) == [0, 1, 2]
    assert main(["--print-matrix", "0"]) == 2
