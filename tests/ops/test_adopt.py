"""`make adopt`: the decisions it takes from a user's data (ops.adopt.infer) and the command in a repository copy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ops.adopt.infer import (
    MIN_WINDOW_POSITIVES,
    MIN_WINDOW_ROWS,
    AdoptError,
    clean_names,
    extract_query,
    normalise,
    plan,
)
from pipeline.config import load_params
from tests.support.repo import BIN, copy_tracked, git_commit_all, run, venv_alias
from tests.support.second_dataset import write_csv


def frame(n: int = 600, days: int = 365, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    visits = pd.array(rng.integers(0, 9, n), dtype="Int64")
    visits[rng.random(n) < 0.1] = pd.NA
    amount = rng.gamma(2, 50, n)
    amount[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "Account ID": [f"A-{i:05d}" for i in range(n)],
            "opened": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(np.sort(rng.uniform(0, days, n)), unit="D"),
            "visits": visits,
            "visits as float": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 5, n)),
            "amount": amount,
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "note": [f"free text {i}" for i in range(n)],
            "constant": 7,
            "flag": rng.random(n) < 0.3,
            "closed": rng.random(n) < 0.3,
        }
    )


def decided(df: pd.DataFrame, label: str = "closed", positive: str | None = None):
    df, renames = clean_names(df)
    df = normalise(df, renames.get("Account ID", "account_id"), "opened", label, positive)
    return df, plan(df, "account_id", "opened", label)


def test_the_contract_follows_the_data_types_nulls_and_ranges():
    _, p = decided(frame())
    features = p.schema["features"]
    assert features["visits"] == {"type": "int", "min": 0, "max": 9, "nullable": True}  # pandas Int64 with NA
    assert features["visits_as_float"]["type"] == "int" and features["visits_as_float"]["nullable"]
    assert features["amount"]["type"] == "float" and features["amount"]["nullable"]
    assert features["amount"]["min"] == 0.0  # widened, never below 0 for non-negative data
    assert features["plan"] == {"type": "category", "allowed": ["basic", "plus", "pro"]}
    assert features["flag"] == {"type": "int", "min": 0, "max": 1}  # booleans are 0/1
    assert set(p.left_out) == {"note", "constant"}
    assert "distinct text values" in p.left_out["note"] and "one value only" in p.left_out["constant"]
    assert p.schema["id_column"] == "account_id" and p.schema["label"] == "closed"


def test_observed_ranges_are_widened_by_the_margin():
    df = frame()
    df["score"] = np.linspace(-10.0, 10.0, len(df))
    _, p = decided(df)
    assert p.schema["features"]["score"] == {"type": "float", "min": -12.0, "max": 12.0}


@pytest.mark.parametrize("days", [365, 3650])
def test_windows_fit_the_span_and_each_holds_enough_to_judge(days):
    df, p = decided(frame(n=2000, days=days))
    assert p.window_days >= days  # the training window covers all the data today
    assert [w.name for w in p.windows] == ["train", "validation", "test"]
    assert sum(w.rows for w in p.windows) == len(df)
    for w in p.windows:
        assert w.rows >= MIN_WINDOW_ROWS and min(w.positives, w.rows - w.positives) >= MIN_WINDOW_POSITIVES
    assert 0.1 * len(df) <= p.windows[2].rows <= 0.25 * len(df)
    assert p.schema["min_rows"] <= len(df)


def test_too_little_data_is_refused_with_the_counts():
    with pytest.raises(AdoptError, match=r"too little data to judge a model: 120 rows .* at least 50 rows"):
        decided(frame(n=120))


def test_a_two_valued_text_label_needs_positive_and_then_maps_to_0_1():
    df = frame()
    df["outcome"] = np.where(df["closed"], "churned", "stayed")
    df = df.drop(columns="closed")
    with pytest.raises(AdoptError, match=r"LABEL column 'outcome'.*POSITIVE=<value>"):
        decided(df, label="outcome")
    normalised, _ = decided(df, label="outcome", positive="churned")
    assert set(normalised["outcome"].unique()) == {0, 1}


def test_duplicate_id_time_rows_and_unparseable_times_are_refused():
    df = frame()
    with pytest.raises(AdoptError, match=r"rows share an \(id, time\) pair"):
        decided(pd.concat([df, df.head(3)], ignore_index=True))
    df["opened"] = df["opened"].astype(str)
    df.loc[5, "opened"] = "sometime in spring"
    with pytest.raises(AdoptError, match=r"TIME column 'opened': 1 of 600 .*'sometime in spring'"):
        decided(df)
    with pytest.raises(AdoptError, match=r"not in the data"):
        normalise(frame(), "nope", "opened", "closed")


def test_the_query_selects_the_contract_in_time_order():
    _, p = decided(frame())
    query = extract_query("accounts", p)
    assert query.startswith('SELECT "account_id", "opened", "visits"')
    assert 'FROM accounts\nWHERE "opened" >= :window_start AND "opened" < :window_end' in query
    assert query.rstrip().endswith('ORDER BY "opened", "account_id"')


def test_make_adopt_in_a_copy_writes_a_valid_project_and_refuses_a_second_run_without_force(tmp_path):
    repo = copy_tracked(tmp_path / "repo", skip=("data/", "docs/"))
    (repo / "params.yaml").write_text((Path(__file__).parents[1] / "support/params.yaml").read_text())
    run(["git", "init", "-q", "-b", "main"], repo)
    git_commit_all(repo, "template")
    csv = write_csv(tmp_path / "export" / "tumours.csv")
    venv = venv_alias(tmp_path)
    adopt = ["make", f"VENV={venv}", "adopt", f"DATA={csv}", "ID=patient id", "TIME=seen at", "LABEL=benign"]

    out = run([*adopt, "NAME=tumor-risk"], repo).stdout
    assert "== make adopt: what it decided ==" in out and "Review before you commit" in out
    params = load_params(repo / "params.yaml")
    assert params.data is None and params.project.name == "tumor-risk"
    assert params.schema.features["size_band"].allowed == ["large", "medium", "small"]
    assert params.schema.features["prior_visits"].nullable
    raw = (repo / "params.yaml").read_text()
    assert "promotion:" in raw and "floors: *floors" in raw  # the anchor kept: one home of the floors
    assert raw.startswith("# The test project")  # comments kept
    assert yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]["path"] == "data"
    run([sys.executable, "-m", "ops.project", "check"], repo)

    before = (repo / "params.yaml").read_bytes()
    again = run(adopt, repo, ok=(2,))
    assert "FORCE=1" in again.stderr and (repo / "params.yaml").read_bytes() == before
    run([*adopt, "FORCE=1"], repo)

    run([str(BIN / "dvc"), "repro", "-q", "-s", "extract", "validate"], repo)  # the data passes its contract
    snapshot = list((repo / "artifacts").rglob("*.parquet"))
    assert snapshot, "extract wrote no snapshot"


def test_bad_input_is_one_line_not_a_traceback(tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("a,b\n1,2\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ops.adopt",
            "--data",
            str(csv),
            "--id",
            "a",
            "--time",
            "t",
            "--label",
            "b",
            "--root",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
