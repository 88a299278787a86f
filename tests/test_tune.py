import json

import optuna
import pytest
import sqlalchemy as sa

from pipeline import tune
from pipeline.errors import PipelineError
from pipeline.tune import open_study, run_tune
from tests.factories import make_snapshot, params_with, write_splits


@pytest.fixture
def prepared(tmp_path):
    write_splits(make_snapshot(1200, seed=3), tmp_path / "prepared")
    return tmp_path / "prepared"


# Small trees: what these tests check (seeding, outputs, resuming) does not depend on the size of the search.
SMALL_MAX_ITER = {"type": "int", "low": 10, "high": 40, "step": 10}


def _run(tmp_path, prepared, n_trials, storage):
    params = params_with(
        {
            "tune.n_trials": n_trials,
            "tune.storage": f"sqlite:///{storage}",
            "tune.search_space.max_iter": SMALL_MAX_ITER,
        }
    )
    out = tmp_path / "tune"
    return run_tune(params, prepared, out, tmp_path / "tune.json", tmp_path / "history.png", log_trials=True)


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
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = (tmp_path / "tune" / "dvclive" / "plots" / "metrics" / "pruned.tsv").read_text().splitlines()
    assert len(history) == 1 + 4  # header + one step per trial


def test_interrupted_study_resumes_instead_of_restarting(tmp_path, prepared, monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    db = tmp_path / "study.db"
    _run(tmp_path, prepared, 2, db)
    resumed = _run(tmp_path, prepared, 3, db)  # same inputs: the study already holds 2 trials
    assert resumed["n_trials_complete"] + resumed["n_trials_pruned"] == 3


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
