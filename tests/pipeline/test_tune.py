import json

import optuna
import pytest
import sqlalchemy as sa

from mlcore.errors import PipelineError
from pipeline import tune
from pipeline.tune import open_study, run_tune
from tests.support.factories import make_snapshot, params_with, write_splits


@pytest.fixture
def prepared(tmp_path):
    write_splits(make_snapshot(1200, seed=3), tmp_path / "prepared")
    return tmp_path / "prepared"


# Small trees: what these tests check (seeding, outputs, resuming) does not depend on the size of the search.
SMALL_MAX_ITER = {"type": "int", "low": 10, "high": 40, "step": 10}


def _run(tmp_path, prepared, n_trials, storage, name="tune"):
    params = params_with(
        {
            "tune.n_trials": n_trials,
            "tune.storage": f"sqlite:///{storage}",
            "tune.search_space.max_iter": SMALL_MAX_ITER,
        }
    )
    out = tmp_path / name
    return run_tune(params, prepared, out, out / "tune.json", out / "history.png", log_trials=True)


def _files(directory):
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_search_is_seeded_and_writes_outputs(tmp_path, prepared, monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    first = _run(tmp_path, prepared, 4, tmp_path / "a.db")
    second = _run(tmp_path, prepared, 4, tmp_path / "b.db")
    assert first["hyperparameters"] == second["hyperparameters"]
    assert first["best_value"] == second["best_value"]
    assert first["n_trials_complete"] + first["n_trials_pruned"] == 4
    best = json.loads((tmp_path / "tune" / "best_params.json").read_text())
    assert set(best) == {
        "learning_rate",
        "max_iter",
        "max_leaf_nodes",
        "min_samples_leaf",
        "l2_regularization",
    }
    assert (tmp_path / "tune" / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = [row.split("\t") for row in (tmp_path / "tune" / "trials.tsv").read_text().splitlines()]
    assert log[0] == ["trial", "state", "valid_roc_auc", *sorted(best)]
    assert [row[0] for row in log[1:]] == ["0", "1", "2", "3"]  # one row per trial
    assert {row[1] for row in log[1:]} <= {"complete", "pruned"}
    assert max(float(r[2]) for r in log[1:] if r[1] == "complete") == first["best_value"]


def test_interrupted_study_resumes_instead_of_restarting(tmp_path, prepared, monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    db = tmp_path / "study.db"
    _run(tmp_path, prepared, 2, db)
    resumed = _run(tmp_path, prepared, 3, db)  # same inputs: the study already holds 2 trials
    assert resumed["n_trials_complete"] + resumed["n_trials_pruned"] == 3


def test_outputs_do_not_depend_on_what_the_study_already_held(tmp_path, prepared, monkeypatch):
    """The stage's outputs are a function of its inputs: a fresh search, one resumed after an interruption
    and one over a study an earlier, larger search filled give the same bytes (dvc.lock stays reproducible)."""
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    _run(tmp_path, prepared, 4, tmp_path / "fresh.db", name="fresh")
    _run(tmp_path, prepared, 2, tmp_path / "resumed.db", name="first-half")
    _run(tmp_path, prepared, 4, tmp_path / "resumed.db", name="resumed")
    _run(tmp_path, prepared, 6, tmp_path / "larger.db", name="larger")
    _run(tmp_path, prepared, 4, tmp_path / "larger.db", name="smaller")
    fresh = _files(tmp_path / "fresh")
    assert {"best_params.json", "tune.json", "history.png", "trials.tsv"} <= set(fresh)
    assert _files(tmp_path / "resumed") == fresh
    assert _files(tmp_path / "smaller") == fresh
    assert _files(tmp_path / "larger") != fresh  # the check can fail: six trials are another search


def test_zero_trials_trains_with_defaults(tmp_path, prepared, monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    result = _run(tmp_path, prepared, 0, tmp_path / "z.db")
    assert result["best_value"] is None
    assert result["hyperparameters"]["max_iter"] == 200


def test_unreachable_storage_names_it_without_password(monkeypatch):
    params = params_with({})
    url = "postgresql+psycopg://user:secret@127.0.0.1:1/optuna"
    with pytest.raises(PipelineError) as err:
        open_study(params, "abc", url)
    assert "127.0.0.1:1/optuna" in str(err.value) and "secret" not in str(err.value)


def test_a_worker_that_loses_the_sqlite_table_creation_race_retries(tmp_path, monkeypatch):
    """Two workers opening a new SQLite study at once: the loser's CREATE TABLE finds the winner's table."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/race.db")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE studies (study_id INTEGER)"))
    with pytest.raises(sa.exc.OperationalError) as lost, engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE studies (study_id INTEGER)"))  # what SQLite tells the loser
    engine.dispose()
    real, calls = optuna.create_study, []

    def create_study(**kwargs):
        calls.append(kwargs["storage"])
        if len(calls) == 1:
            raise lost.value
        return real(**kwargs)

    monkeypatch.setattr(tune.optuna, "create_study", create_study)
    study = open_study(params_with({}), "race", f"sqlite:///{tmp_path}/studies.db")
    assert len(calls) == 2 and study.study_name.endswith("-race")


def test_the_study_is_named_after_the_project(tmp_path):
    study = open_study(params_with({"project.name": "acme-risk"}), "f00d", f"sqlite:///{tmp_path}/studies.db")
    assert study.study_name == "acme-risk-f00d"
