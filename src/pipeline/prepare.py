"""Stage `prepare`: split the snapshot by time into train / validation / test windows.

The newest `prepare.test_days` are the test window, the `prepare.valid_days` before them the validation window,
everything older is training data: no model ever sees rows from after the window it is judged on.
Feature handling that must also happen at serving time lives in the model pipeline (pipeline.modeling).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import atomic_files, read_json
from pipeline.chunks import iter_chunks, open_snapshot, pandas_schema
from pipeline.config import PrepareParams, SchemaParams, load_params

SPLITS = ("train", "valid", "test")
# Rows per Parquet row group of the outputs (as in the snapshot): what a window needs in memory while it is
# written. A window of fewer rows is one row group, byte for byte what `DataFrame.to_parquet` writes; a larger
# one has the same rows and types in more row groups than pandas' 1,048,576-row ones (which cost 2x the memory).
ROW_GROUP_ROWS = 65536


def window_starts(newest: pd.Timestamp, prepare: PrepareParams) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(valid_start, test_start): train is time <= valid_start < valid <= test_start < test."""
    test_start = newest - pd.Timedelta(days=prepare.test_days)
    return test_start - pd.Timedelta(days=prepare.valid_days), test_start


def _check_split(name: str, rows: int, labels: int) -> None:
    if rows == 0 or labels < 2:
        raise PipelineError(
            f"prepare: the {name} window has {rows} rows and {labels} label class(es); it needs both "
            f"classes: change prepare.valid_days/test_days or widen extract.window_days"
        )


# What each window is, and the keys that make it longer.
_WINDOW_KEYS = {
    "train": (
        "everything before the validation window",
        "shorten prepare.valid_days/test_days or widen extract.window_days",
    ),
    "valid": ("prepare.valid_days", "raise prepare.valid_days (or widen extract.window_days)"),
    "test": ("prepare.test_days", "raise prepare.test_days (or widen extract.window_days)"),
}


def thin_windows(sizes: dict[str, dict[str, int]], prepare: PrepareParams) -> list[str]:
    """One warning per window with fewer rows or positives than prepare.min_window_rows/min_window_positives."""
    warnings = []
    for name, size in sizes.items():
        if size["rows"] < prepare.min_window_rows or size["positives"] < prepare.min_window_positives:
            what, fix = _WINDOW_KEYS[name]
            warnings.append(
                f"the {name} window ({what}) has {size['rows']} rows and {size['positives']} positives, "
                f"below prepare.min_window_rows ({prepare.min_window_rows}) or prepare.min_window_positives "
                f"({prepare.min_window_positives}): too few to judge a model by; {fix}"
            )
    return warnings


def split_by_time(df: pd.DataFrame, schema: SchemaParams, prepare: PrepareParams) -> dict[str, pd.DataFrame]:
    """The three windows of a table in memory (what `split_snapshot` writes for a file, chunk by chunk)."""
    time = pd.to_datetime(df[schema.time_column])
    valid_start, test_start = window_starts(time.max(), prepare)
    masks = {
        "train": time <= valid_start,
        "valid": (time > valid_start) & (time <= test_start),
        "test": time > test_start,
    }
    splits = {}
    for name, mask in masks.items():
        part = df.loc[mask, _columns(schema)].sort_values(
            [schema.time_column, schema.id_column], kind="stable"
        )
        _check_split(name, len(part), part[schema.label].nunique())
        splits[name] = part.reset_index(drop=True)
    return splits


def _columns(schema: SchemaParams) -> list[str]:
    return [schema.id_column, schema.time_column, *schema.feature_names, schema.label]


# --- streaming a snapshot file --------------------------------------------------------------------


class _SplitFile:
    """One output window: rows appended in order, written in full row groups of ROW_GROUP_ROWS."""

    def __init__(self, path: Path, label: str) -> None:
        self.path, self.label = path, label
        self.rows, self.positives, self.labels = 0, 0, set()
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None

    def append(self, part: pa.Table) -> None:
        if not part.num_rows:
            return
        if self._writer is None:
            # The schema pandas would write (its metadata included), from an empty slice of the same types.
            schema = pa.Schema.from_pandas(part.slice(0, 0).to_pandas(), preserve_index=False)
            self._writer = pq.ParquetWriter(self.path, schema, compression="snappy")
        self.rows += part.num_rows
        self.positives += pc.sum(part.column(self.label)).as_py() or 0
        self.labels.update(v for v in pc.unique(part.column(self.label)).to_pylist() if v is not None)
        self._pending.append(part.cast(self._writer.schema))
        self._pending_rows += part.num_rows
        while self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def _flush(self, rows: int) -> None:
        buffered = pa.concat_tables(self._pending)
        self._writer.write_table(buffered.slice(0, rows), row_group_size=ROW_GROUP_ROWS)
        rest = buffered.slice(rows)
        self._pending, self._pending_rows = [rest], rest.num_rows

    def close(self) -> None:
        if self._writer is not None:
            if self._pending_rows:
                self._flush(self._pending_rows)
            self._writer.close()


def _scan_order(
    snapshot: pq.ParquetFile, schema: SchemaParams, chunk_rows: int
) -> tuple[pd.Timestamp | None, bool]:
    """(newest time, whether rows are already in (time, id) order), reading only those two columns."""
    keys = [schema.time_column, schema.id_column]
    newest, ordered, last = None, True, None
    for chunk in iter_chunks(snapshot, chunk_rows, columns=keys):
        if not chunk.num_rows:
            continue
        time, ident = (chunk.column(k).combine_chunks() for k in keys)
        chunk_newest = pc.max(time).as_py()
        if newest is None or (chunk_newest is not None and chunk_newest > newest):
            newest = chunk_newest
        if ordered:
            if last is not None:  # the previous chunk's last row goes first
                time = pa.concat_arrays([pa.array([last[0]], time.type), time])
                ident = pa.concat_arrays([pa.array([last[1]], ident.type), ident])
            t0, t1, i0, i1 = time[:-1], time[1:], ident[:-1], ident[1:]
            backwards = pc.or_(pc.less(t1, t0), pc.and_(pc.equal(t1, t0), pc.less(i1, i0)))
            ordered = not pc.any(backwards).as_py()
            last = (time[-1].as_py(), ident[-1].as_py())
    return (None if newest is None else pd.Timestamp(newest)), ordered


def _sorted_chunks(
    path: str | Path, columns: list[str], schema: SchemaParams, memory_limit: str, chunk_rows: int
):
    """The snapshot's rows in (time, id, file position) order, sorted by DuckDB within `memory_limit` (it spills
    to a temporary directory beyond it): the order a stable sort by (time, id) gives, without the whole table."""
    import duckdb

    select = ", ".join(f'"{c}"' for c in columns)
    order = f'"{schema.time_column}", "{schema.id_column}", file_row_number'
    with tempfile.TemporaryDirectory(prefix="prepare-duckdb-") as spill:
        con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": spill})
        try:
            sql = f"SELECT {select} FROM read_parquet(?, file_row_number = true) ORDER BY {order}"
            yield from con.sql(sql, params=[str(path)]).to_arrow_reader(chunk_rows)
        finally:
            con.close()


def split_snapshot(
    snapshot_path: str | Path,
    out_dir: str | Path,
    schema: SchemaParams,
    prepare: PrepareParams,
    chunk_rows: int,
    duckdb_memory_limit: str = "512MB",
) -> dict[str, dict[str, int]]:
    """Write train/valid/test Parquet files from the snapshot, `chunk_rows` rows at a time; return each window's
    `rows` and `positives`.

    The files hold what `split_by_time` gives for the whole table, written like
    `to_parquet(index=False, row_group_size=ROW_GROUP_ROWS)`. A snapshot in (time, id) order (the extract
    query's ORDER BY) is read twice, two columns then all; any other order is sorted by DuckDB first (within
    `duckdb_memory_limit`, spilling to disk). Nothing is replaced unless all three windows are fine."""
    snapshot = open_snapshot(snapshot_path)
    newest, ordered = _scan_order(snapshot, schema, chunk_rows)
    if newest is None:
        raise PipelineError(f"{snapshot_path}: the snapshot has no rows")
    valid_start, test_start = (
        pa.scalar(t.to_pydatetime(), pa.timestamp("us")) for t in window_starts(newest, prepare)
    )
    columns = _columns(schema)
    if ordered:
        chunks = iter_chunks(snapshot, chunk_rows, columns=columns)
    else:
        target = pa.schema([pandas_schema(snapshot).field(c) for c in columns])
        batches = _sorted_chunks(snapshot_path, columns, schema, duckdb_memory_limit, chunk_rows)
        chunks = (pa.Table.from_batches([b]).cast(target) for b in batches)
    paths = [Path(out_dir) / f"{name}.parquet" for name in SPLITS]
    with atomic_files(paths) as temps:
        files = dict(zip(SPLITS, (_SplitFile(tmp, schema.label) for tmp in temps), strict=True))
        try:
            for chunk in chunks:
                time = chunk.column(schema.time_column).cast(valid_start.type)
                after_valid_start = pc.greater(time, valid_start)
                in_test = pc.greater(time, test_start)
                files["train"].append(chunk.filter(pc.invert(after_valid_start)))
                files["valid"].append(chunk.filter(pc.and_(after_valid_start, pc.invert(in_test))))
                files["test"].append(chunk.filter(in_test))
        finally:
            for split in files.values():
                split.close()
        for name, split in files.items():
            _check_split(name, split.rows, len(split.labels))
    return {name: {"rows": split.rows, "positives": split.positives} for name, split in files.items()}


def run_prepare(
    params_path: str | Path, snapshot: str | Path, validation: str | Path, out_dir: str | Path
) -> tuple[dict[str, dict[str, int]], list[str]]:
    """(each window's rows and positives, the warnings for windows too thin to judge by)."""
    params = load_params(params_path)
    if not read_json(validation).get("passed"):
        raise PipelineError(f"{validation}: the snapshot did not pass validation")
    sizes = split_snapshot(
        snapshot,
        out_dir,
        params.schema,
        params.prepare,
        params.extract.chunk_rows,
        params.warehouse.duckdb_memory_limit,
    )
    return sizes, thin_windows(sizes, params.prepare)


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--snapshot", required=True)
    parser.add_argument("--validation", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    sizes, warnings = run_prepare(args.params, args.snapshot, args.validation, args.out)
    print(
        "prepare: " + ", ".join(f"{k} {s['rows']} rows ({s['positives']} positive)" for k, s in sizes.items())
    )
    for warning in warnings:
        print(f"prepare: warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
