import pandas as pd
import pytest
import yaml

from mlcore.errors import PipelineError
from pipeline import extract, prepare, validate
from pipeline.prepare import SPLITS, main, split_by_time, split_snapshot
from tests.support.factories import default_params, make_snapshot, params_with, raw_params
from tests.support.paths import TEST_PARAMS


def test_windows_are_ordered_in_time_with_no_overlap():
    params = default_params()
    splits = split_by_time(make_snapshot(2000, days=360), params.schema, params.prepare)
    t = {k: pd.to_datetime(v["event_time"]) for k, v in splits.items()}
    assert t["train"].max() < t["valid"].min()
    assert t["valid"].max() < t["test"].min()
    newest = max(s.max() for s in t.values())
    assert (newest - t["test"].min()).days < params.prepare.test_days
    assert sum(len(v) for v in splits.values()) == 2000


def test_split_keeps_only_contract_columns():
    params = default_params()
    df = make_snapshot(1000).assign(leaky_future_column=1)
    splits = split_by_time(df, params.schema, params.prepare)
    assert list(splits["train"].columns) == [
        "customer_id",
        "event_time",
        *params.schema.feature_names,
        "churned",
    ]


def test_empty_window_is_a_clear_error():
    params = params_with({"prepare.test_days": 400})  # the test window swallows all data: train is empty
    with pytest.raises(PipelineError, match=r"the train window has 0 rows .*prepare.valid_days/test_days"):
        split_by_time(make_snapshot(1000, days=360), params.schema, params.prepare)


def test_cli_refuses_a_failed_validation(tmp_path, capsys):
    snapshot = tmp_path / "snapshot.parquet"
    make_snapshot(800).to_parquet(snapshot, index=False)
    (tmp_path / "validation.json").write_text('{"passed": false}')
    status = main(
        [
            "--params",
            str(TEST_PARAMS),
            "--snapshot",
            str(snapshot),
            "--validation",
            str(tmp_path / "validation.json"),
            "--out",
            str(tmp_path / "prepared"),
        ]
    )
    assert status == 2
    assert "did not pass validation" in capsys.readouterr().err
    assert not (tmp_path / "prepared").exists()


# --- streaming a snapshot file in chunks ---------------------------------------------------------------


def _whole_table_files(df, out_dir, params, row_group_rows):
    """What prepare wrote before it streamed: split in memory, then DataFrame.to_parquet."""
    out_dir.mkdir()
    for name, part in split_by_time(df, params.schema, params.prepare).items():
        part.to_parquet(out_dir / f"{name}.parquet", index=False, row_group_size=row_group_rows)
    return {name: (out_dir / f"{name}.parquet").read_bytes() for name in SPLITS}


def _streamed_files(df, tmp_path, params, chunk_rows, name="streamed"):
    snapshot = tmp_path / f"{name}-snapshot.parquet"
    df.to_parquet(snapshot, index=False, row_group_size=700)
    sizes = split_snapshot(snapshot, tmp_path / name, params.schema, params.prepare, chunk_rows)
    rows = {split: size["rows"] for split, size in sizes.items()}
    files = {split: (tmp_path / name / f"{split}.parquet").read_bytes() for split in SPLITS}
    return rows, files


@pytest.mark.parametrize("chunk_rows", [97, 1000, 5000])
def test_streamed_files_are_the_bytes_of_the_whole_table_version(tmp_path, monkeypatch, chunk_rows):
    # Small output row groups, so that the files hold several and chunks cross their boundaries.
    monkeypatch.setattr(prepare, "ROW_GROUP_ROWS", 300)
    params = default_params()
    df = make_snapshot(2000, days=360)
    expected = _whole_table_files(df, tmp_path / "whole", params, row_group_rows=300)
    rows, files = _streamed_files(df, tmp_path, params, chunk_rows)
    assert files == expected
    assert sum(rows.values()) == 2000 and rows["train"] > rows["valid"] > 0
    assert len(pd.read_parquet(tmp_path / "streamed" / "train.parquet")) == rows["train"]


def test_a_split_boundary_inside_a_chunk_sends_each_row_to_its_window(tmp_path):
    params = default_params()
    df = make_snapshot(2000, days=360)
    whole = split_by_time(df, params.schema, params.prepare)
    first_valid = len(whole["train"])  # row index of the first validation row
    chunk_rows = first_valid + 5  # the first chunk ends 5 rows into the validation window
    rows, _ = _streamed_files(df, tmp_path, params, chunk_rows)
    assert rows == {name: len(part) for name, part in whole.items()}
    for name, part in whole.items():
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "streamed" / f"{name}.parquet"), part)


def test_a_snapshot_out_of_time_order_is_sorted_like_a_stable_sort(tmp_path):
    params = default_params()
    df = make_snapshot(2000, days=360)
    # Two rows with the same time and id as others but another label: their order must follow the file's.
    twins = df.iloc[[10, 1500]].assign(churned=lambda d: 1 - d["churned"])
    shuffled = pd.concat([df, twins]).sample(frac=1, random_state=3).reset_index(drop=True)
    expected = _whole_table_files(shuffled, tmp_path / "whole", params, row_group_rows=None)
    _, files = _streamed_files(shuffled, tmp_path, params, chunk_rows=250)
    assert files == expected


def test_a_window_without_both_classes_fails_and_keeps_the_previous_files(tmp_path):
    params = params_with({"prepare.test_days": 5})
    df = make_snapshot(2000, days=360)
    df.loc[df["event_time"] > df["event_time"].max() - pd.Timedelta(days=5), "churned"] = 0
    snapshot, out = tmp_path / "snapshot.parquet", tmp_path / "prepared"
    df.to_parquet(snapshot, index=False)
    out.mkdir()
    (out / "test.parquet").write_text("previous")
    with pytest.raises(PipelineError, match=r"the test window has \d+ rows and 1 label class\(es\)"):
        split_snapshot(snapshot, out, params.schema, params.prepare, chunk_rows=300)
    assert sorted(p.name for p in out.iterdir()) == ["test.parquet"]
    assert (out / "test.parquet").read_text() == "previous"


def test_unreadable_snapshot_is_a_clear_error(tmp_path):
    params = default_params()
    with pytest.raises(PipelineError, match=r"absent\.parquet: cannot read snapshot"):
        split_snapshot(tmp_path / "absent.parquet", tmp_path / "out", params.schema, params.prepare, 100)


# --- windows too thin to judge a model by ----------------------------------------------------------------------


def _run_cli(tmp_path, df, overrides):
    raw = raw_params()
    for key, value in overrides.items():
        raw["prepare"][key] = value
    params, snapshot = tmp_path / "params.yaml", tmp_path / "snapshot.parquet"
    params.write_text(yaml.safe_dump(raw))
    df.to_parquet(snapshot, index=False)
    (tmp_path / "validation.json").write_text('{"passed": true}')
    return main(
        [
            *("--params", str(params), "--snapshot", str(snapshot)),
            *("--validation", str(tmp_path / "validation.json"), "--out", str(tmp_path / "prepared")),
        ]
    )


def test_a_thin_test_window_is_split_with_a_warning_naming_the_key(tmp_path, capsys):
    df = make_snapshot(2000, days=360)
    assert _run_cli(tmp_path, df, {"test_days": 5, "valid_days": 120}) == 0
    test_rows = len(pd.read_parquet(tmp_path / "prepared" / "test.parquet"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"prepare: warning: the test window (prepare.test_days) has {test_rows} rows and "
    )
    assert "below prepare.min_window_rows (200) or prepare.min_window_positives (20)" in err[0]
    assert err[0].endswith("raise prepare.test_days (or widen extract.window_days)")


def test_windows_large_enough_split_without_a_warning(tmp_path, capsys):
    assert _run_cli(tmp_path, make_snapshot(2000, days=360), {"test_days": 60, "valid_days": 60}) == 0
    out = capsys.readouterr()
    assert out.err == "" and out.out.startswith("prepare: train ")


def test_the_thresholds_are_params(tmp_path, capsys):
    df = make_snapshot(2000, days=360)
    overrides = {"test_days": 60, "valid_days": 60, "min_window_rows": 1000, "min_window_positives": 1}
    assert _run_cli(tmp_path, df, overrides) == 0
    warned = [line.split(" window ")[0] for line in capsys.readouterr().err.splitlines()]
    assert warned == ["prepare: warning: the valid", "prepare: warning: the test"]


@pytest.mark.parametrize(
    "dtype", ["Int64", "float64"]
)  # float64: what pandas makes of an int column with NaN
def test_a_nullable_int_feature_goes_through_extract_validate_and_prepare(tmp_path, monkeypatch, dtype):
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    df = make_snapshot(2000, days=360)
    df["support_tickets"] = df["support_tickets"].astype(dtype)
    df.loc[df.index % 7 == 0, "support_tickets"] = None
    (tmp_path / "events").mkdir()
    df.to_parquet(tmp_path / "events" / "all.parquet", index=False)  # int64 with nulls
    raw = raw_params()
    raw["warehouse"]["files"] = "events/*.parquet"
    raw["schema"]["features"]["support_tickets"]["nullable"] = True
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    files = {name: str(tmp_path / name) for name in ("snapshot.parquet", "data.json", "validation.json")}
    assert (
        extract.main(
            ["--params", str(params), "--out", files["snapshot.parquet"], "--info", files["data.json"]]
        )
        == 0
    )
    assert (
        validate.main(
            [
                "--params",
                str(params),
                "--snapshot",
                files["snapshot.parquet"],
                "--out",
                files["validation.json"],
            ]
        )
        == 0
    )
    args = [
        "--params",
        str(params),
        "--snapshot",
        files["snapshot.parquet"],
        "--validation",
        files["validation.json"],
    ]
    assert main([*args, "--out", str(tmp_path / "prepared")]) == 0
    parts = [pd.read_parquet(tmp_path / "prepared" / f"{name}.parquet") for name in SPLITS]
    tickets = pd.concat(parts)["support_tickets"]
    assert tickets.isna().sum() == df["support_tickets"].isna().sum()
    assert (tickets.dropna() == tickets.dropna().round()).all()


def test_a_nullable_int_column_stored_as_float_still_refuses_a_fraction(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    df = make_snapshot(500, days=360)
    df["support_tickets"] = df["support_tickets"].astype("float64")
    df.loc[df.index % 7 == 0, "support_tickets"] = None
    df.loc[3, "support_tickets"] = 14.5
    (tmp_path / "events").mkdir()
    df.to_parquet(tmp_path / "events" / "all.parquet", index=False)
    raw = raw_params()
    raw["warehouse"]["files"] = "events/*.parquet"
    raw["schema"]["features"]["support_tickets"]["nullable"] = True
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    argv = ["--params", str(params), "--out", str(tmp_path / "s.parquet"), "--info", str(tmp_path / "d.json")]
    assert extract.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "all.parquet: column 'support_tickets' holds DOUBLE" in err and "whole numbers (it holds 14.5)" in err
    )
