import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from mlcore.errors import PipelineError
from pipeline.chunks import open_snapshot
from pipeline.validate import (
    main,
    regroup_file,
    run_validate,
    snapshot_frames,
    validate_chunks,
    validate_snapshot,
)
from tests.support.factories import default_params, make_snapshot, params_with, raw_params
from tests.support.paths import TEST_PARAMS


def test_clean_snapshot_passes():
    report = validate_snapshot(make_snapshot(600), default_params().schema)
    assert report["passed"] is True
    assert report["rows"] == 600
    assert set(report["null_fraction"]) == {"total_charges", "avg_session_minutes"}


def _break(df, how):
    if how == "missing column":
        return df.drop(columns=["support_tickets"])
    if how == "wrong type":
        return df.assign(tenure_months=df["tenure_months"].astype(str))
    if how == "unknown category":
        df.loc[7, "contract"] = "weekly"
    elif how == "out of range":
        df.loc[3, "monthly_charges"] = -5.0
    elif how == "nan label":
        df["churned"] = df["churned"].astype(float)
        df.loc[2, "churned"] = float("nan")
    elif how == "null in non-nullable":
        df["region"] = df["region"].astype(object)
        df.loc[4, "region"] = None
    elif how == "too few rows":
        return df.head(10)
    return df


@pytest.mark.parametrize(
    ("how", "column", "rule"),
    [
        ("missing column", "support_tickets", "column_in_dataframe"),
        ("wrong type", "tenure_months", "type is int"),
        ("unknown category", "contract", "isin"),
        ("out of range", "monthly_charges", "greater_than_or_equal_to(0.0)"),
        ("nan label", "churned", "not_nullable"),
        ("null in non-nullable", "region", "not_nullable"),
        ("too few rows", None, "at least 500 rows"),
    ],
)
def test_each_broken_rule_is_reported(how, column, rule):
    report = validate_snapshot(_break(make_snapshot(600), how), default_params().schema)
    assert report["passed"] is False
    matching = [f for f in report["failures"] if f["column"] == column and rule in f["rule"]]
    assert matching, report["failures"]


def test_cli_fails_with_one_line_and_keeps_previous_report(tmp_path, capsys):
    snapshot, out = tmp_path / "snapshot.parquet", tmp_path / "validation.json"
    out.write_text('{"passed": true, "previous": 1}')
    df = make_snapshot(600)
    df.loc[7, "contract"] = "weekly"
    df.to_parquet(snapshot, index=False)
    status = main(["--params", str(TEST_PARAMS), "--snapshot", str(snapshot), "--out", str(out)])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {snapshot}: column 'contract' breaks rule 'isin(")
    assert "weekly" in err and "\n" not in err
    assert out.read_text() == '{"passed": true, "previous": 1}'


def test_cli_writes_report_on_success(tmp_path):
    snapshot, out = tmp_path / "snapshot.parquet", tmp_path / "validation.json"
    make_snapshot(600).to_parquet(snapshot, index=False)
    assert main(["--params", str(TEST_PARAMS), "--snapshot", str(snapshot), "--out", str(out)]) == 0
    assert '"passed": true' in out.read_text()


def test_unreadable_snapshot_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="cannot read snapshot"):
        from pipeline.validate import run_validate

        run_validate(TEST_PARAMS, tmp_path / "absent.parquet", tmp_path / "out.json")


# --- a snapshot file read in chunks -------------------------------------------------------------------


def _chunked_report(df, tmp_path, chunk_rows):
    path = tmp_path / "snapshot.parquet"
    df.to_parquet(path, index=False, row_group_size=250)
    return validate_chunks(
        snapshot_frames(open_snapshot(path), chunk_rows), default_params().schema, regroup_file(path, "512MB")
    )


def test_chunked_report_equals_the_whole_table_report(tmp_path):
    df = make_snapshot(1200)
    chunked = _chunked_report(df, tmp_path, chunk_rows=100)
    assert chunked == validate_snapshot(df, default_params().schema)
    assert (
        chunked["passed"] is True and chunked["rows"] == 1200
    )  # min_rows 500: met by the total, not a chunk


def test_an_error_in_a_later_chunk_is_found_and_counted_with_the_rest(tmp_path):
    df = make_snapshot(1200)
    df.loc[[50, 950, 1100], "monthly_charges"] = [-5.0, -6.0, -7.0]  # chunks 1, 10 and 12 of 100 rows
    df.loc[[900, 901, 1150, 1190], "contract"] = ["weekly", "daily", "weekly", "hourly"]
    chunked = _chunked_report(df, tmp_path, chunk_rows=100)
    assert chunked == validate_snapshot(df, default_params().schema)
    by_column = {f["column"]: f for f in chunked["failures"]}
    assert by_column["monthly_charges"]["count"] == 3
    assert by_column["monthly_charges"]["examples"] == ["-5.0", "-6.0", "-7.0"]
    assert by_column["contract"]["count"] == 4
    assert by_column["contract"]["examples"] == ["weekly", "daily", "hourly"]


def test_a_column_rule_counts_once_however_many_chunks(tmp_path):
    df = make_snapshot(1200).assign(tenure_months=lambda d: d["tenure_months"].astype(str))
    failures = _chunked_report(df, tmp_path, chunk_rows=100)["failures"]
    assert {"column": "tenure_months", "rule": "type is int", "count": 1, "examples": []} in failures


def test_a_null_label_in_one_chunk_types_the_label_as_in_the_whole_table(tmp_path):
    df = make_snapshot(1200)
    df["churned"] = df["churned"].astype("Int64")
    df.loc[1111, "churned"] = None  # only chunk 12 holds a null; pandas reads the whole column as float
    path = tmp_path / "snapshot.parquet"
    # As extract writes snapshots: Arrow types only, no pandas metadata (which would restore Int64).
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None), path)
    chunked = validate_chunks(
        snapshot_frames(open_snapshot(path), 100), default_params().schema, regroup_file(path, "512MB")
    )
    whole = validate_snapshot(pd.read_parquet(path), default_params().schema)
    assert sorted(chunked["failures"], key=str) == sorted(whole["failures"], key=str)
    assert {(f["column"], f["rule"]) for f in chunked["failures"]} == {
        ("churned", "type is integer"),
        ("churned", "not_nullable"),
    }


def test_too_few_rows_over_all_chunks_is_one_table_rule(tmp_path):
    report = _chunked_report(make_snapshot(450), tmp_path, chunk_rows=100)
    assert report["failures"] == [
        {"column": None, "rule": "at least 500 rows (schema.min_rows)", "count": 1, "examples": ["False"]}
    ]
    assert report["rows"] == 450


def test_an_empty_snapshot_still_reports_missing_columns(tmp_path):
    path = tmp_path / "snapshot.parquet"
    make_snapshot(10).drop(columns=["region"]).head(0).to_parquet(path, index=False)
    report = validate_chunks(
        snapshot_frames(open_snapshot(path), 100), default_params().schema, regroup_file(path, "512MB")
    )
    rules = {(f["column"], f["rule"]) for f in report["failures"]}
    assert ("region", "column_in_dataframe") in rules and (
        None,
        "at least 500 rows (schema.min_rows)",
    ) in rules


# --- one row per (id, time) -----------------------------------------------------------------------------------

DUPLICATE_RULE = "one row per (customer_id, event_time)"


def _with_copies(df, rows):
    """`df` with a second copy of each of `rows` (a month file loaded twice, an export that overlaps)."""
    return pd.concat([df, df.iloc[rows]], ignore_index=True)


def test_a_duplicate_id_and_time_fails_with_a_count_and_an_example():
    df = make_snapshot(600)
    report = validate_snapshot(_with_copies(df, [5, 9, 9]), default_params().schema)
    assert report["passed"] is False
    first = f"{df.loc[5, 'customer_id']} at {df.loc[5, 'event_time']}"
    [failure] = [f for f in report["failures"] if f["rule"].startswith(DUPLICATE_RULE)]
    assert failure["column"] is None
    assert failure["count"] == 5  # rows sharing their (id, time) with another: 2 of row 5, 3 of row 9
    assert failure["examples"][0] == f"{first} (2 rows)"


def test_the_same_id_at_another_time_is_another_observation():
    df = make_snapshot(600)
    again = df.iloc[:50].assign(event_time=df["event_time"].iloc[:50] + pd.Timedelta(days=30))
    report = validate_snapshot(pd.concat([df, again], ignore_index=True), default_params().schema)
    assert report["passed"] is True, report["failures"]


def test_duplicates_in_different_chunks_are_found(tmp_path):
    df = make_snapshot(1200)
    df = _with_copies(df, [3, 1100])  # the copies land in the last chunk, far from the originals
    chunked = _chunked_report(df, tmp_path, chunk_rows=100)
    assert chunked == validate_snapshot(df, default_params().schema)
    [failure] = chunked["failures"]
    assert failure["rule"].startswith(DUPLICATE_RULE) and failure["count"] == 4


def test_cli_names_the_snapshot_the_duplicate_count_and_an_example(tmp_path, capsys):
    snapshot, out = tmp_path / "snapshot.parquet", tmp_path / "validation.json"
    df = make_snapshot(600)
    _with_copies(df, [7]).to_parquet(snapshot, index=False)
    status = main(["--params", str(TEST_PARAMS), "--snapshot", str(snapshot), "--out", str(out)])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {snapshot}: table breaks rule '{DUPLICATE_RULE}")
    assert f"(2 failing e.g. {df.loc[7, 'customer_id']} at " in err and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize("chunk_rows", [50, 100, 5000])
def test_duplicates_in_a_snapshot_in_time_order_are_counted_as_it_streams(tmp_path, chunk_rows):
    df = make_snapshot(1200)  # in (time, id) order, as the extract query writes it
    copies = _with_copies(df, [99, 100, 100, 101, 640]).sort_values(
        ["event_time", "customer_id"], kind="stable"
    )
    path = tmp_path / "snapshot.parquet"
    copies.to_parquet(path, index=False)

    def no_second_pass(sql):
        raise AssertionError("a snapshot in (time, id) order needs no second pass")

    report = validate_chunks(
        snapshot_frames(open_snapshot(path), chunk_rows), default_params().schema, no_second_pass
    )
    [failure] = report["failures"]
    assert failure["count"] == 9  # 2 + 3 + 2 + 2 rows, runs that straddle chunk boundaries included
    assert failure["examples"] == [
        f"{df.loc[i, 'customer_id']} at {df.loc[i, 'event_time']} ({n} rows)"
        for i, n in [(99, 2), (100, 3), (101, 2)]
    ]
    shuffled = validate_snapshot(copies.sample(frac=1, random_state=1), default_params().schema)
    assert shuffled["failures"][0]["count"] == 9  # the same count from DuckDB's GROUP BY


# --- a nullable int feature -----------------------------------------------------------------------------------

NULLABLE_TICKETS = {
    "schema.features.support_tickets": {"type": "int", "min": 0, "max": 100, "nullable": True}
}


def _nullable_int_snapshot(tmp_path, values):
    """A snapshot whose `support_tickets` holds `values` in its first rows, written as extract writes it: Arrow
    int64 with nulls (or float64 if a value is not whole), no pandas metadata, so pandas reads it as float64."""
    df = make_snapshot(600)
    df["support_tickets"] = df["support_tickets"].astype("float64")
    df.loc[: len(values) - 1, "support_tickets"] = [np.nan if v is None else v for v in values]
    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    if all(v is None or float(v).is_integer() for v in values):
        table = table.set_column(
            table.schema.get_field_index("support_tickets"),
            "support_tickets",
            table.column("support_tickets").cast(pa.int64()),
        )
    path = tmp_path / "snapshot.parquet"
    pq.write_table(table, path)
    return path


def test_a_nullable_int_feature_with_nulls_passes(tmp_path):
    path = _nullable_int_snapshot(tmp_path, [None, 3, None])
    assert pq.read_schema(path).field("support_tickets").type == pa.int64()
    schema = params_with(NULLABLE_TICKETS).schema
    report = validate_chunks(snapshot_frames(open_snapshot(path), 100), schema, regroup_file(path, "512MB"))
    assert report["passed"] is True, report["failures"]
    assert report["null_fraction"]["support_tickets"] == pytest.approx(2 / 600)


def test_a_nullable_int_feature_still_refuses_a_fraction(tmp_path):
    path = _nullable_int_snapshot(tmp_path, [None, 14.5])
    schema = params_with(NULLABLE_TICKETS).schema
    report = validate_snapshot(pd.read_parquet(path), schema)
    assert report["failures"] == [
        {"column": "support_tickets", "rule": "whole numbers", "count": 1, "examples": ["14.5"]}
    ]


def test_an_int_feature_that_is_not_nullable_still_refuses_floats():
    df = make_snapshot(600).assign(support_tickets=lambda d: d["support_tickets"].astype("float64"))
    failures = validate_snapshot(df, default_params().schema)["failures"]
    assert [(f["column"], f["rule"]) for f in failures] == [("support_tickets", "type is int")]


# --- too few rows: the keys that decide the count --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cutoff", "up_to"),
    [
        ("2025-06-30", "up to 2025-06-30 (extract.cutoff)"),
        ("latest", "up to the newest event (extract.cutoff: latest)"),
    ],
)
def test_too_few_rows_names_the_count_the_window_and_min_rows(tmp_path, cutoff, up_to):
    snapshot, out = tmp_path / "snapshot.parquet", tmp_path / "validation.json"
    make_snapshot(424).to_parquet(snapshot, index=False)
    params = tmp_path / "params.yaml"
    raw = raw_params()
    raw["extract"]["cutoff"] = cutoff
    params.write_text(yaml.safe_dump(raw))
    with pytest.raises(PipelineError) as caught:
        run_validate(params, snapshot, out)
    assert str(caught.value) == (
        f"{snapshot}: the window of 540 days (extract.window_days) {up_to} holds 424 rows; "
        "schema.min_rows is 500: lower schema.min_rows or widen the window"
    )
