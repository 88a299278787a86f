import tempfile
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from demo.generate import generate_month, month_range, write_month
from demo.load_warehouse import load_files
from mlcore.errors import PipelineError
from mlcore.io import read_json, sha256_file
from pipeline import extract
from pipeline.config import parse_params
from pipeline.extract import extract_snapshot, main, parse_cutoff, training_window
from pipeline.warehouse import open_warehouse, schema_types
from tests.support.paths import REPO_ROOT, TEST_PARAMS

MONTHS = month_range("2024-01", 3)


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    """Three generated months of 120 rows each, as the warehouse files and as one frame."""
    root = tmp_path_factory.mktemp("warehouse")
    frames = [generate_month(m, 120, 11) for m in MONTHS]
    for month, frame in zip(MONTHS, frames, strict=True):
        write_month(frame, root / "events" / f"{month}.parquet")
    return root, pd.concat(frames, ignore_index=True)


def _params(files, **extract_overrides):
    raw = yaml.safe_load(TEST_PARAMS.read_text())
    raw["warehouse"]["files"] = str(files)
    raw["extract"].update(extract_overrides)
    return parse_params(raw)


def _run(events, out, url=None, **overrides):
    root, _ = events
    params = _params(root / "events" / "*.parquet", **overrides)
    warehouse = open_warehouse(params, root, url)
    try:
        return extract_snapshot(warehouse, params.extract, params.schema, params.warehouse.table, out)
    finally:
        warehouse.close()


@pytest.mark.parametrize(
    ("cutoff", "expected"),
    [("latest", None), ("2025-06-30", date(2025, 6, 30)), ("2024-02-29", date(2024, 2, 29))],
)
def test_parse_cutoff_accepts_latest_or_a_date(cutoff, expected):
    assert parse_cutoff(cutoff) == expected


@pytest.mark.parametrize(
    "cutoff", ["yesterday", "2025-13-01", "2025-6-1", "2023-02-29", "", "2025-06-30T12:00"]
)
def test_parse_cutoff_rejects_anything_else_naming_the_key(cutoff):
    with pytest.raises(PipelineError, match=f"extract.cutoff: '{cutoff}' is neither 'latest' nor a date"):
        parse_cutoff(cutoff)


def test_training_window_covers_whole_days_up_to_and_including_the_cutoff():
    assert training_window(date(2025, 6, 30), 30) == (datetime(2025, 6, 1), datetime(2025, 7, 1))
    assert training_window(date(2024, 3, 1), 1) == (datetime(2024, 3, 1), datetime(2024, 3, 2))


def test_latest_cutoff_takes_the_newest_day_and_returns_exactly_the_window(events, tmp_path):
    _, frame = events
    info = _run(events, tmp_path / "snap.parquet", window_days=40)
    newest = frame["event_time"].max()
    assert info["cutoff"] == newest.date().isoformat()
    end = pd.Timestamp(newest.date()) + pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=40)
    assert (info["window_start"], info["window_end"]) == (start.isoformat(), end.isoformat())
    expected = frame[(frame["event_time"] >= start) & (frame["event_time"] < end)]
    snapshot = pd.read_parquet(tmp_path / "snap.parquet")
    assert info["rows"] == len(snapshot) == len(expected) > 0
    assert list(snapshot["customer_id"]) == list(
        expected.sort_values(["event_time", "customer_id"])["customer_id"]
    )
    assert info["positive_rate"] == pytest.approx(expected["churned"].mean(), abs=1e-6)
    assert info["snapshot_sha256"] == sha256_file(tmp_path / "snap.parquet")


def test_date_cutoff_includes_that_day_and_nothing_after(events, tmp_path):
    _, frame = events
    info = _run(events, tmp_path / "snap.parquet", cutoff="2024-02-15", window_days=10)
    snapshot = pd.read_parquet(tmp_path / "snap.parquet")
    assert snapshot["event_time"].min() >= pd.Timestamp("2024-02-06")
    assert snapshot["event_time"].max() < pd.Timestamp("2024-02-16")
    in_window = frame["event_time"].between(pd.Timestamp("2024-02-06"), pd.Timestamp("2024-02-16"), "left")
    assert info["rows"] == in_window.sum()
    assert info["window_end"] == "2024-02-16T00:00:00"


def test_snapshot_has_the_contract_types(events, tmp_path):
    _run(events, tmp_path / "snap.parquet")
    params = _params("unused")
    arrow_schema = pq.read_schema(tmp_path / "snap.parquet")
    expected = schema_types(params.schema)
    assert {name: arrow_schema.field(name).type for name in arrow_schema.names} == expected
    assert arrow_schema.metadata is None or b"pandas" not in arrow_schema.metadata


def test_chunked_output_is_byte_identical_to_unchunked(events, tmp_path, monkeypatch):
    monkeypatch.setattr(extract, "ROW_GROUP_ROWS", 50)  # several row groups even for tiny data
    one = _run(events, tmp_path / "one.parquet", chunk_rows=1_000_000)
    small = _run(events, tmp_path / "small.parquet", chunk_rows=7)
    assert one == {**small, "snapshot_sha256": one["snapshot_sha256"]}
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "small.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "small.parquet").metadata.num_row_groups == -(-one["rows"] // 50)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cutoff": "2020-01-31"}, "no rows between 2018-08-10T00:00:00 and 2020-02-01T00:00:00"),
        ({"query": "SELECT customer_id, no_such_column FROM events"}, "extract.query: .*no_such_column"),
        ({"query": "SELECT * FROM no_such_table WHERE 1 = 1"}, "extract.query: .*no_such_table"),
        ({"cutoff": "last week"}, "extract.cutoff: 'last week'"),
    ],
)
def test_bad_inputs_stop_with_one_clear_line_and_keep_the_old_output(events, tmp_path, overrides, message):
    out = tmp_path / "snap.parquet"
    out.write_bytes(b"previous snapshot")
    with pytest.raises(PipelineError, match=message):
        _run(events, out, **overrides)
    assert out.read_bytes() == b"previous snapshot"
    assert [p.name for p in tmp_path.iterdir()] == ["snap.parquet"]  # no temporary file left behind


def test_missing_warehouse_files_name_the_key(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the DuckDB spill directory goes
    params = _params(tmp_path / "nothing" / "*.parquet")
    with pytest.raises(PipelineError, match=r"warehouse\.files: .*No files found"):
        open_warehouse(params, tmp_path)
    assert not list(tmp_path.glob("extract-duckdb-*"))  # nothing left behind


def _write_params(tmp_path, files, **extract_overrides):
    raw = yaml.safe_load(TEST_PARAMS.read_text())
    raw["warehouse"]["files"] = files
    raw["extract"].update(extract_overrides)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _cli_args(params, tmp_path):
    return ["--params", str(params), "--out", str(tmp_path / "s.parquet"), "--info", str(tmp_path / "d.json")]


def test_cli_reads_files_relative_to_params_and_writes_the_data_json_contract(events, tmp_path, monkeypatch):
    root, _ = events
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    (tmp_path / "data").symlink_to(root)
    params = _write_params(tmp_path, "data/events/*.parquet")
    monkeypatch.chdir(REPO_ROOT)  # the relative path must not depend on the working directory
    rc = main(
        ["--params", str(params), "--out", str(tmp_path / "s.parquet"), "--info", str(tmp_path / "d.json")]
    )
    assert rc == 0
    info = read_json(tmp_path / "d.json")
    assert set(info) == {
        *("rows", "table_rows", "window_dropped_rows", "window_start", "window_end", "cutoff"),
        *("snapshot_sha256", "positive_rate"),
    }
    assert info["rows"] == len(MONTHS) * 120  # the default window spans all three months


def test_cli_unreachable_warehouse_url_names_the_host_but_not_the_password(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WAREHOUSE_URL", "postgresql+psycopg://etl:s3cret-pw@127.0.0.1:9/warehouse")
    params = _write_params(tmp_path, "data/events/*.parquet")
    rc = main(
        ["--params", str(params), "--out", str(tmp_path / "s.parquet"), "--info", str(tmp_path / "d.json")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("error: WAREHOUSE_URL: cannot connect to 127.0.0.1:9/warehouse")
    assert "s3cret" not in "\n".join(err)
    assert not (tmp_path / "s.parquet").exists() and not (tmp_path / "d.json").exists()


def test_invalid_warehouse_url_is_a_clear_error(events):
    params = _params("unused")
    with pytest.raises(PipelineError, match="WAREHOUSE_URL: not a valid SQLAlchemy URL"):
        open_warehouse(params, events[0], "not a url")


@pytest.fixture(scope="module")
def postgres_events(postgres_url, events):
    """The same generated events loaded into a PostgreSQL table `events` (by demo.load_warehouse)."""
    root, frame = events
    loaded = load_files(postgres_url, "events", sorted((root / "events").glob("*.parquet")))
    assert loaded == len(frame)
    return postgres_url


@pytest.mark.postgres
def test_postgres_gives_the_same_snapshot_bytes_as_duckdb(postgres_events, events, tmp_path, monkeypatch):
    monkeypatch.setattr(extract, "ROW_GROUP_ROWS", 64)
    duck = _run(events, tmp_path / "duck.parquet", window_days=50, chunk_rows=1000)
    pg = _run(events, tmp_path / "pg.parquet", url=postgres_events, window_days=50, chunk_rows=13)
    assert pg == duck
    assert (tmp_path / "pg.parquet").read_bytes() == (tmp_path / "duck.parquet").read_bytes()
    nulls = pd.read_parquet(tmp_path / "pg.parquet")["avg_session_minutes"].isna().sum()
    assert nulls > 0  # missing values arrive as nulls, not NaN or zero


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"query": "SELECT no_such_column FROM events WHERE event_time < :window_end"}, "no_such_column"),
        ({"cutoff": "2020-01-31"}, "no rows between 2018-08-10T00:00:00 and 2020-02-01T00:00:00"),
    ],
)
def test_postgres_bad_query_or_empty_window_is_one_clear_error(
    postgres_events, events, tmp_path, overrides, message
):
    with pytest.raises(PipelineError, match=message):
        _run(events, tmp_path / "pg.parquet", url=postgres_events, **overrides)
    assert not (tmp_path / "pg.parquet").exists()


def test_duckdb_memory_limit_is_validated_and_its_spill_directory_removed(events, tmp_path):
    raw = yaml.safe_load(TEST_PARAMS.read_text())
    raw["warehouse"]["duckdb_memory_limit"] = "a lot"
    with pytest.raises(PipelineError, match=r"warehouse\.duckdb_memory_limit"):
        parse_params(raw)
    params = _params(events[0] / "events" / "*.parquet")
    warehouse = open_warehouse(params, events[0])
    spill_dir = Path(warehouse._spill_dir)
    assert spill_dir.is_dir() and spill_dir.parent != REPO_ROOT
    warehouse.close()
    assert not spill_dir.exists()


def test_csv_files_give_the_same_snapshot_as_parquet(events, tmp_path):
    import pyarrow.csv as pacsv

    root, _ = events
    for path in sorted((root / "events").glob("*.parquet")):
        pacsv.write_csv(pq.read_table(path), tmp_path / f"{path.stem}.csv")
    params = _params(tmp_path / "*.csv", window_days=50)
    warehouse = open_warehouse(params, tmp_path)
    try:
        from_csv = extract_snapshot(
            warehouse, params.extract, params.schema, params.warehouse.table, tmp_path / "csv.parquet"
        )
    finally:
        warehouse.close()
    from_parquet = _run(events, tmp_path / "parquet.parquet", window_days=50)
    assert from_csv == from_parquet


# --- what the files hold: each file read with its own types, checked against the contract --------------------


def _copy_months(events, directory, suffix=".parquet"):
    """The fixture's months as files in `directory` (Parquet, or CSV as pyarrow writes it)."""
    import pyarrow.csv as pacsv

    root, _ = events
    directory.mkdir(exist_ok=True)
    for path in sorted((root / "events").glob("*.parquet")):
        table = pq.read_table(path)
        if suffix == ".csv":
            pacsv.write_csv(table, directory / f"{path.stem}.csv")
        else:
            pq.write_table(table, directory / path.name)
    return directory


def _extract_from(directory, pattern, tmp_path):
    params = _params(directory / pattern, window_days=800)
    warehouse = open_warehouse(params, directory)
    try:
        return extract_snapshot(
            warehouse, params.extract, params.schema, params.warehouse.table, tmp_path / "snap.parquet"
        )
    finally:
        warehouse.close()


def _replace_column(path, name, values):
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index(name), name, pa.array(values)), path)


@pytest.mark.parametrize(
    ("values", "found"),
    [
        (lambda v: [x + 0.5 for x in v], "DOUBLE"),  # 14.5 was read as 14
        (lambda v: [str(x) for x in v], "VARCHAR"),  # "14" was read as 14
    ],
    ids=["float in an int column", "strings in an int column"],
)
def test_a_month_file_of_the_wrong_type_is_refused_naming_the_file_and_the_column(
    events, tmp_path, values, found
):
    data = _copy_months(events, tmp_path / "events")
    bad = data / f"{MONTHS[1]}.parquet"
    _replace_column(bad, "tenure_months", values(pq.read_table(bad).column("tenure_months").to_pylist()))
    with pytest.raises(PipelineError) as caught:
        _extract_from(data, "*.parquet", tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{bad}: column 'tenure_months' holds {found}")
    assert "(schema.features.tenure_months: int) needs an integer type" in message and "\n" not in message
    assert not (tmp_path / "snap.parquet").exists()


def test_a_float_column_may_be_integer_in_one_file_and_keeps_the_other_files_fractions(events, tmp_path):
    data = _copy_months(events, tmp_path / "events")
    first = data / f"{MONTHS[0]}.parquet"  # the first file decided every file's types
    charges = pq.read_table(first).column("monthly_charges").to_pylist()
    _replace_column(first, "monthly_charges", pa.array([round(x) for x in charges], pa.int64()))
    _extract_from(data, "*.parquet", tmp_path)
    snapshot = pq.read_table(tmp_path / "snap.parquet").to_pandas()
    later = pq.read_table(data / f"{MONTHS[2]}.parquet").to_pandas()
    merged = later.merge(snapshot, on="customer_id", suffixes=("", "_snap"))
    assert len(merged) == len(later)
    assert (merged["monthly_charges"] == merged["monthly_charges_snap"]).all()


def test_a_month_file_without_a_required_column_is_refused_naming_it(events, tmp_path):
    data = _copy_months(events, tmp_path / "events")
    bad = data / f"{MONTHS[2]}.parquet"
    pq.write_table(pq.read_table(bad).drop(["region"]), bad)
    with pytest.raises(
        PipelineError, match=rf"^{bad}: no column 'region', which params.yaml schema requires"
    ):
        _extract_from(data, "*.parquet", tmp_path)


def test_csv_text_in_a_number_column_is_refused_naming_the_file_and_the_column(events, tmp_path):
    data = _copy_months(events, tmp_path / "csv", ".csv")
    bad = data / f"{MONTHS[1]}.csv"
    header, *lines = bad.read_text().splitlines()
    index = header.split(",").index('"tenure_months"')
    rows = [line.split(",") for line in lines]
    for row in rows:
        row[index] = f'"{int(row[index]):03d}"'  # "014": text that the old reader turned into 14
    bad.write_text("\n".join([header, *(",".join(r) for r in rows)]) + "\n")
    with pytest.raises(PipelineError, match=rf"^{bad}: column 'tenure_months' holds VARCHAR"):
        _extract_from(data, "*.csv", tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.98], ids=["within the sniffed sample", "after it"])
def test_a_truncated_csv_is_one_error_naming_the_file(events, tmp_path, keep):
    data = _copy_months(events, tmp_path / "csv", ".csv")
    bad = data / f"{MONTHS[1]}.csv"
    text = bad.read_bytes()
    if keep > 0.9:  # more rows than DuckDB's sniffer samples, so the cut is found while reading
        header, body = text.split(b"\n", 1)
        text = header + b"\n" + body * 200
    cut = text.index(b"\n", int(len(text) * keep)) + 30  # 30 bytes into a row: it ends after the event time
    bad.write_bytes(text[:cut])
    with pytest.raises(PipelineError) as caught:
        _extract_from(data, "*.csv", tmp_path)
    message = str(caught.value)
    assert str(bad) in message and "\n" not in message, message


def test_csv_months_with_their_columns_in_another_order_give_the_same_snapshot(events, tmp_path):
    import pyarrow.csv as pacsv

    data = _copy_months(events, tmp_path / "csv", ".csv")
    moved = data / f"{MONTHS[1]}.csv"
    table = pacsv.read_csv(moved)
    pacsv.write_csv(table.select(list(reversed(table.column_names))), moved)
    from_csv = _extract_from(data, "*.csv", tmp_path)
    assert from_csv == _run(events, tmp_path / "parquet.parquet", window_days=800)


def test_a_database_text_column_is_not_parsed_into_a_number_column(events, tmp_path):
    import sqlite3

    _, frame = events
    with sqlite3.connect(tmp_path / "warehouse.db") as con:  # a TEXT column holding "14"
        frame.assign(tenure_months=frame["tenure_months"].astype(str)).to_sql("events", con, index=False)
    with pytest.raises(PipelineError, match=r"column 'tenure_months' holds text where the contract"):
        _run(events, tmp_path / "snap.parquet", url=f"sqlite:///{tmp_path / 'warehouse.db'}", window_days=800)


def test_a_csv_float_column_of_whole_numbers_in_the_first_file_keeps_the_other_files_fractions(
    events, tmp_path
):
    import pyarrow.csv as pacsv

    data = _copy_months(events, tmp_path / "csv", ".csv")
    first = data / f"{MONTHS[0]}.csv"
    table = pacsv.read_csv(first)
    whole = pa.array([round(x) for x in table.column("monthly_charges").to_pylist()], pa.int64())
    pacsv.write_csv(
        table.set_column(table.schema.get_field_index("monthly_charges"), "monthly_charges", whole), first
    )
    _extract_from(data, "*.csv", tmp_path)
    snapshot = (
        pq.read_table(tmp_path / "snap.parquet").to_pandas().set_index("customer_id")["monthly_charges"]
    )
    later = pq.read_table(events[0] / "events" / f"{MONTHS[2]}.parquet").to_pandas()
    assert (snapshot.loc[later["customer_id"]].to_numpy() == later["monthly_charges"].to_numpy()).all()


# --- what the window leaves out -------------------------------------------------------------------------------


def test_data_json_records_the_rows_the_window_left_out(events, tmp_path):
    _, frame = events
    info = _run(events, tmp_path / "snap.parquet", cutoff="2024-02-15", window_days=10)
    assert info["table_rows"] == len(frame)
    assert info["window_dropped_rows"] == (frame["event_time"] < pd.Timestamp("2024-02-06")).sum() > 0


def test_a_window_that_leaves_out_much_of_the_table_warns_naming_the_key(
    events, tmp_path, monkeypatch, capsys
):
    root, frame = events
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    params = _write_params(
        tmp_path, str(root / "events" / "*.parquet"), window_days=40, warn_dropped_share=0.2
    )
    assert main(_cli_args(params, tmp_path)) == 0
    info = read_json(tmp_path / "d.json")
    dropped = info["window_dropped_rows"]
    assert dropped == (frame["event_time"] < pd.Timestamp(info["window_start"])).sum()
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        f"extract: warning: the window of 40 days (extract.window_days) leaves out {dropped} of the "
        f"{len(frame)} rows in the warehouse table ({dropped / len(frame):.0%}, older than "
        f"{info['window_start']}), more than extract.warn_dropped_share (20%): widen extract.window_days "
        "to train on them"
    )


def test_a_window_that_keeps_the_table_or_stays_within_the_share_is_silent(
    events, tmp_path, monkeypatch, capsys
):
    root, _ = events
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    for overrides in ({}, {"window_days": 40, "warn_dropped_share": 0.9}):
        params = _write_params(tmp_path, str(root / "events" / "*.parquet"), **overrides)
        assert main(_cli_args(params, tmp_path)) == 0
        assert "warning" not in capsys.readouterr().err


def test_a_sqlite_warehouse_gives_the_same_snapshot_and_counts_as_the_embedded_one(events, tmp_path):
    """The same data through WAREHOUSE_URL (SQLite, via SQLAlchemy) and through DuckDB: the same snapshot, and the
    rows the window leaves out counted the same (portable SQL: binds, no dialect-specific literals)."""
    import sqlite3

    _, frame = events
    with sqlite3.connect(tmp_path / "warehouse.db") as con:
        frame.to_sql("events", con, index=False)
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    embedded = _run(events, tmp_path / "duckdb.parquet", window_days=60)
    database = _run(events, tmp_path / "sqlite.parquet", url=url, window_days=60)
    assert embedded["window_dropped_rows"] > 0
    assert (database["rows"], database["table_rows"], database["window_dropped_rows"]) == (
        embedded["rows"],
        embedded["table_rows"],
        embedded["window_dropped_rows"],
    )
