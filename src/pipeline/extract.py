"""Stage `extract`: run params.yaml `extract.query` in the warehouse and write the training snapshot.

The query's `:window_start` and `:window_end` are bound from `extract.cutoff` and `extract.window_days`: the
window is [cutoff + 1 day - window_days, cutoff + 1 day), the cutoff day included. `cutoff: latest` means the
day of the newest `schema.time_column` value in `warehouse.table`.

The warehouse (pipeline/warehouse.py) is DuckDB in-process by default, with a view named `warehouse.table`
over `warehouse.files` (Parquet or CSV; a relative path is relative to params.yaml; `s3://bucket/prefix/*.parquet`
and other object stores are read through fsspec, e.g. s3fs, with credentials from the environment). With
`WAREHOUSE_URL` set (a SQLAlchemy URL such as postgresql+psycopg://user@host/db) the same query runs there.
Either way the filter runs inside the warehouse and the result streams back in chunks of `extract.chunk_rows`
rows, written to Parquet as it arrives, so memory is bounded by the chunk size, not the window. Columns named in
`schema` get fixed types (int -> int64, float -> float64, category -> string, time column -> timestamp[us]) and
rows go into fixed-size row groups, so the same rows give the same snapshot bytes from either warehouse and any
chunk size.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import atomic_write, sha256_file, write_json
from pipeline.config import ExtractParams, SchemaParams, load_params
from pipeline.warehouse import WAREHOUSE_URL_ENV, open_warehouse, schema_types

# Rows per Parquet row group: fixed, so snapshot bytes do not depend on chunk_rows or the warehouse.
ROW_GROUP_ROWS = 65536

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# --- the window -----------------------------------------------------------------------------------


def parse_cutoff(cutoff: str) -> date | None:
    """'latest' -> None; 'YYYY-MM-DD' -> that date; anything else is a clear error."""
    if cutoff == "latest":
        return None
    try:
        return (
            date.fromisoformat(cutoff) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", cutoff) else _bad_cutoff(cutoff)
        )
    except ValueError:
        return _bad_cutoff(cutoff)


def _bad_cutoff(cutoff: str):
    raise PipelineError(f"params.yaml: extract.cutoff: '{cutoff}' is neither 'latest' nor a date YYYY-MM-DD")


def training_window(cutoff_day: date, window_days: int) -> tuple[datetime, datetime]:
    """[start, end) covering `window_days` whole days up to and including `cutoff_day`."""
    end = datetime.combine(cutoff_day + timedelta(days=1), datetime.min.time())
    return end - timedelta(days=window_days), end


# --- the snapshot's types -------------------------------------------------------------------------


def _conform(batch: pa.RecordBatch, types: dict[str, pa.DataType]) -> pa.Table:
    """Cast the columns named in the contract to their types; other columns keep the warehouse's type.

    Text is never parsed into a number column ("14" -> 14 would hide a column of the wrong type from `validate`;
    DuckDB's files are checked before the query, see pipeline.warehouse.check_file_types); a number that does
    not fit (14.5 into int) stops the stage."""
    columns = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        target = types.get(name)
        if target is not None and column.type != target:
            text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            if text and (pa.types.is_integer(target) or pa.types.is_floating(target)):
                raise PipelineError(
                    f"extract: column '{name}' holds text where the contract (params.yaml schema) needs "
                    f"{target}: fix the column's type in the warehouse, or the contract"
                )
            try:
                column = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise PipelineError(
                    f"extract: column '{name}': cannot convert {column.type} to {target} "
                    f"({str(exc).splitlines()[0]})"
                ) from exc
        columns.append(column)
    return pa.Table.from_arrays(columns, names=batch.schema.names)


# --- the stage ------------------------------------------------------------------------------------


def extract_snapshot(
    warehouse,
    extract: ExtractParams,
    schema: SchemaParams,
    table: str,
    out: str | Path,
    progress: Progress = _quiet,
) -> dict:
    """Run the query over the training window, stream it into `out` (Parquet); return the data.json record."""
    cutoff_day = _cutoff_day(warehouse, extract.cutoff, schema.time_column, table)
    start, end = training_window(cutoff_day, extract.window_days)
    types = schema_types(schema)
    stats = {"rows": 0, "positives": 0, "labelled": 0}

    def write(tmp: Path) -> None:
        binds = {"window_start": start, "window_end": end}
        batches = warehouse.batches(extract.query, binds, extract.chunk_rows)
        _write_row_groups(batches, tmp, types, schema.label, stats, progress)
        if stats["rows"] == 0:
            raise PipelineError(
                f"extract: no rows between {start.isoformat()} and {end.isoformat()} in {warehouse.name} "
                f"(extract.cutoff={extract.cutoff}, extract.window_days={extract.window_days})"
            )

    atomic_write(out, write)
    labelled = stats["labelled"]
    table_rows = warehouse.scalar(f'SELECT count(*) FROM "{table}"')
    older = warehouse.scalar(
        f'SELECT count(*) FROM "{table}" WHERE "{schema.time_column}" < :window_start',
        {"window_start": start},
    )
    return {
        "rows": stats["rows"],
        "table_rows": int(table_rows),
        "window_dropped_rows": int(older),
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "cutoff": cutoff_day.isoformat(),
        "snapshot_sha256": sha256_file(out),
        "positive_rate": round(stats["positives"] / labelled, 6) if labelled else None,
    }


def dropped_rows_warning(info: dict, extract: ExtractParams) -> str | None:
    """A warning when the window left out more than extract.warn_dropped_share of the table's rows."""
    dropped, total = info["window_dropped_rows"], info["table_rows"]
    if not total or dropped / total <= extract.warn_dropped_share:
        return None
    return (
        f"the window of {extract.window_days} days (extract.window_days) leaves out {dropped:,} of the "
        f"{total:,} rows in the warehouse table ({dropped / total:.0%}, older than {info['window_start']}), "
        f"more than extract.warn_dropped_share ({extract.warn_dropped_share:.0%}): widen extract.window_days "
        "to train on them"
    )


def _cutoff_day(warehouse, cutoff: str, time_column: str, table: str) -> date:
    """The day `extract.cutoff` names; for 'latest', the day of the newest `time_column` value in `table`."""
    cutoff_day = parse_cutoff(cutoff)
    if cutoff_day is not None:
        return cutoff_day
    latest = warehouse.scalar(f'SELECT max("{time_column}") FROM "{table}"')
    if latest is None:
        raise PipelineError(
            f"warehouse ({warehouse.name}): table '{table}' has no rows, so no 'latest' cutoff"
        )
    return latest.date() if isinstance(latest, datetime) else date.fromisoformat(str(latest)[:10])


def _write_row_groups(
    batches: Iterable[pa.RecordBatch],
    tmp: Path,
    types: dict[str, pa.DataType],
    label: str,
    stats: dict,
    progress: Progress,
) -> None:
    """Write the batches to the Parquet file `tmp` in row groups of ROW_GROUP_ROWS, counting rows into `stats`.

    With no rows at all nothing is written (the caller refuses an empty window)."""
    writer = None
    pending: list[pa.Table] = []
    pending_rows = 0
    try:
        for batch in batches:
            chunk = _conform(batch, types)
            if writer is None:
                writer = pq.ParquetWriter(tmp, chunk.schema, compression="zstd")
            elif chunk.schema != writer.schema:
                chunk = chunk.cast(writer.schema)  # e.g. a column that was all-null in the first chunk
            _count(chunk, label, stats)
            pending.append(chunk)
            pending_rows += chunk.num_rows
            while pending_rows >= ROW_GROUP_ROWS:
                buffered = pa.concat_tables(pending)
                writer.write_table(buffered.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                rest = buffered.slice(ROW_GROUP_ROWS)
                pending, pending_rows = [rest], rest.num_rows
            if chunk.num_rows:
                progress(f"extract: {stats['rows']:,} rows")
        if pending_rows:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
    finally:
        if writer is not None:
            writer.close()


def _count(chunk: pa.Table, label: str, stats: dict) -> None:
    import pyarrow.compute as pc

    stats["rows"] += chunk.num_rows
    if label in chunk.column_names and chunk.num_rows:
        column = chunk.column(label)
        stats["labelled"] += len(column) - column.null_count
        stats["positives"] += pc.sum(column).as_py() or 0


def _every(seconds: float) -> Progress:
    """A progress printer (stderr) that prints at most once per `seconds`: rows so far, not a flood."""
    last = [float("-inf")]

    def show(message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= seconds:
            last[0] = now
            print(message, file=sys.stderr, flush=True)

    return show


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.extract", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="snapshot Parquet file")
    parser.add_argument(
        "--info", required=True, help="metrics JSON: rows, window, cutoff, hash, positive rate"
    )
    return parser.parse_args(argv)


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    params = load_params(args.params)
    warehouse = open_warehouse(params, Path(args.params).resolve().parent, os.environ.get(WAREHOUSE_URL_ENV))
    try:
        print(f"extract: querying {warehouse.name}", file=sys.stderr, flush=True)
        info = extract_snapshot(
            warehouse,
            params.extract,
            params.schema,
            params.warehouse.table,
            args.out,
            progress=_every(2.0),
        )
    finally:
        warehouse.close()
    write_json(args.info, info)
    warning = dropped_rows_warning(info, params.extract)
    if warning:
        print(f"extract: warning: {warning}", file=sys.stderr)
    print(
        f"extract: {info['rows']:,} rows from {info['window_start']} to {info['window_end']} "
        f"(positive rate {info['positive_rate']}) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
