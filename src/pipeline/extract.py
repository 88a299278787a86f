"""Stage `extract`: run params.yaml `extract.query` in the warehouse and write the training snapshot.

The query's `:window_start` and `:window_end` are bound from `extract.cutoff` and `extract.window_days`: the
window is [cutoff + 1 day - window_days, cutoff + 1 day), the cutoff day included. `cutoff: latest` means the
day of the newest `schema.time_column` value in `warehouse.table`.

The warehouse is DuckDB in-process by default, with a view named `warehouse.table` over `warehouse.files`
(Parquet or CSV; a relative path is relative to params.yaml; `s3://bucket/prefix/*.parquet` and other object
stores are read through fsspec, e.g. s3fs, with credentials from the environment). With `WAREHOUSE_URL` set
(a SQLAlchemy URL such as postgresql+psycopg://user@host/db) the same query runs there. Either way the filter runs inside the
warehouse and the result streams back in chunks of `extract.chunk_rows` rows, written to Parquet as it
arrives, so memory is bounded by the chunk size, not the window. Columns named in `schema` get fixed types
(int -> int64, float -> float64, category -> string, time column -> timestamp[us]) and rows go into
fixed-size row groups, so the same rows give the same snapshot bytes from either warehouse and any chunk size.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import atomic_write, sha256_file, write_json
from pipeline.config import ExtractParams, Params, SchemaParams, WarehouseParams, load_params

WAREHOUSE_URL_ENV = "WAREHOUSE_URL"
# Rows per Parquet row group: fixed, so snapshot bytes do not depend on chunk_rows or the warehouse.
ROW_GROUP_ROWS = 65536
_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "category": pa.string()}
_BIND = re.compile(r"(?<![:\w]):(window_start|window_end)\b")

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


# --- types ----------------------------------------------------------------------------------------


def schema_types(schema: SchemaParams) -> dict[str, pa.DataType]:
    """The Arrow type of every column the data contract names."""
    types = {name: _ARROW_TYPES[spec.type] for name, spec in schema.features.items()}
    types[schema.id_column] = pa.string()
    types[schema.time_column] = pa.timestamp("us")
    types[schema.label] = pa.int64()
    return types


def _conform(batch: pa.RecordBatch, types: dict[str, pa.DataType]) -> pa.Table:
    """Cast the columns named in the contract to their types; other columns keep the warehouse's type."""
    columns = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        target = types.get(name)
        if target is not None and column.type != target:
            try:
                column = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise PipelineError(
                    f"extract: column '{name}': cannot convert {column.type} to {target} "
                    f"({str(exc).splitlines()[0]})"
                ) from exc
        columns.append(column)
    return pa.Table.from_arrays(columns, names=batch.schema.names)


def _rows_to_batch(names: list[str], rows: list, types: dict[str, pa.DataType]) -> pa.RecordBatch:
    """Rows of Python values (from a DB-API cursor) -> one Arrow batch, contract columns typed directly."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = []
    for name, values in zip(names, columns, strict=True):
        try:
            arrays.append(pa.array(values, type=types.get(name)))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            arrays.append(pa.array(values))  # e.g. NUMERIC -> decimal; _conform casts it or names the column
    return pa.RecordBatch.from_arrays(arrays, names=names)


# --- warehouses -----------------------------------------------------------------------------------


class DuckDBWarehouse:
    """DuckDB in-process, with a view over the data files."""

    def __init__(self, warehouse: WarehouseParams, base_dir: Path) -> None:
        import duckdb

        self._duckdb = duckdb
        files = warehouse.files
        if "://" not in files and not Path(files).is_absolute():
            files = str(base_dir / files)
        reader = "read_csv_auto" if files.lower().endswith((".csv", ".csv.gz")) else "read_parquet"
        self.name = f"duckdb over {warehouse.files}"
        object_store = _object_store(files)
        # Spill to a private temporary directory (DuckDB's default is ./.tmp in the working directory).
        self._spill_dir = tempfile.mkdtemp(prefix="extract-duckdb-")
        self._con = duckdb.connect(
            config={"memory_limit": warehouse.duckdb_memory_limit, "temp_directory": self._spill_dir}
        )
        try:
            if object_store is not None:
                self._con.register_filesystem(object_store)
            self._con.execute(f'CREATE VIEW "{warehouse.table}" AS SELECT * FROM {reader}({_sql_str(files)})')
        except duckdb.Error as exc:
            self.close()
            raise PipelineError(f"params.yaml: warehouse.files: {_first_line(exc)}") from exc

    def scalar(self, sql: str):
        try:
            return self._con.execute(sql).fetchall()[0][0]
        except self._duckdb.Error as exc:
            raise PipelineError(f"warehouse ({self.name}): {_first_line(exc)}") from exc

    def batches(self, query: str, binds: dict, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        try:
            used = {name: binds[name] for name in _BIND.findall(query)}  # DuckDB refuses unused values
            sql = _BIND.sub(r"$\1", query)
            reader = self._con.sql(sql, params=used or None).to_arrow_reader(chunk_rows)
            yield from reader
        except self._duckdb.Error as exc:
            raise PipelineError(f"params.yaml: extract.query: {_first_line(exc)}") from exc

    def close(self) -> None:
        self._con.close()
        shutil.rmtree(self._spill_dir, ignore_errors=True)


def _object_store(files: str):
    """The fsspec filesystem for `s3://...`, `gs://...` (any scheme but local files), which DuckDB then reads
    through; None for local paths. Credentials and endpoint come from the environment, as for any client of that
    store (s3fs: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3, or FSSPEC_S3_* keys)."""
    scheme = files.split("://", 1)[0].lower() if "://" in files else "file"
    if scheme in ("file", "local"):
        return None
    import fsspec

    try:
        # A fresh instance: a cached one would keep the credentials/endpoint of an earlier call in this process.
        return fsspec.filesystem(scheme, skip_instance_cache=True)
    except (ImportError, ValueError) as exc:
        raise PipelineError(
            f"params.yaml: warehouse.files: no filesystem for '{scheme}://' ({_first_line(exc)}); "
            "install its fsspec package (s3fs for s3://, gcsfs for gs://, adlfs for az://)"
        ) from exc


class SQLAlchemyWarehouse:
    """Any database SQLAlchemy reaches; results stream through a server-side cursor (PostgreSQL: psycopg)."""

    def __init__(self, url: str, types: dict[str, pa.DataType]) -> None:
        import sqlalchemy as sa

        self._sa = sa
        self._types = types
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise PipelineError(f"{WAREHOUSE_URL_ENV}: not a valid SQLAlchemy URL") from exc
        # Name the host and database in messages, never the password.
        self.name = (
            f"{parsed.host or 'localhost'}{f':{parsed.port}' if parsed.port else ''}/{parsed.database or ''}"
        )
        try:
            self._engine = sa.create_engine(parsed)
            self._engine.connect().close()
        except (sa.exc.NoSuchModuleError, ModuleNotFoundError) as exc:
            raise PipelineError(
                f"{WAREHOUSE_URL_ENV}: no driver for '{parsed.drivername}' (install the database's driver)"
            ) from exc
        except sa.exc.DBAPIError as exc:
            raise PipelineError(
                f"{WAREHOUSE_URL_ENV}: cannot connect to {self.name}: {_first_line(exc.orig or exc)}"
            ) from exc

    def scalar(self, sql: str):
        try:
            with self._engine.connect() as conn:
                return conn.execute(self._sa.text(sql)).scalar()
        except self._sa.exc.DBAPIError as exc:
            raise PipelineError(f"warehouse ({self.name}): {_first_line(exc.orig or exc)}") from exc

    def batches(self, query: str, binds: dict, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        try:
            with self._engine.connect() as conn:
                result = conn.execution_options(stream_results=True, max_row_buffer=chunk_rows).execute(
                    self._sa.text(query), binds
                )
                names = list(result.keys())
                yielded = False
                for rows in result.partitions(chunk_rows):
                    yielded = True
                    yield _rows_to_batch(names, rows, self._types)
                if not yielded:
                    yield _rows_to_batch(names, [], self._types)
        except self._sa.exc.DBAPIError as exc:
            raise PipelineError(f"params.yaml: extract.query: {_first_line(exc.orig or exc)}") from exc

    def close(self) -> None:
        self._engine.dispose()


def open_warehouse(params: Params, base_dir: Path, url: str | None = None):
    """DuckDB over the files, or the database at `url` (WAREHOUSE_URL) when given."""
    if url:
        return SQLAlchemyWarehouse(url, schema_types(params.schema))
    return DuckDBWarehouse(params.warehouse, base_dir)


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
    cutoff_day = parse_cutoff(extract.cutoff)
    if cutoff_day is None:
        latest = warehouse.scalar(f'SELECT max("{schema.time_column}") FROM "{table}"')
        if latest is None:
            raise PipelineError(
                f"warehouse ({warehouse.name}): table '{table}' has no rows, so no 'latest' cutoff"
            )
        cutoff_day = latest.date() if isinstance(latest, datetime) else date.fromisoformat(str(latest)[:10])
    start, end = training_window(cutoff_day, extract.window_days)
    types = schema_types(schema)
    stats = {"rows": 0, "positives": 0, "labelled": 0}

    def write(tmp: Path) -> None:
        writer = None
        pending: list[pa.Table] = []
        pending_rows = 0
        try:
            for batch in warehouse.batches(
                extract.query, {"window_start": start, "window_end": end}, extract.chunk_rows
            ):
                chunk = _conform(batch, types)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, chunk.schema, compression="zstd")
                elif chunk.schema != writer.schema:
                    chunk = chunk.cast(writer.schema)  # e.g. a column that was all-null in the first chunk
                _count(chunk, schema.label, stats)
                pending.append(chunk)
                pending_rows += chunk.num_rows
                while pending_rows >= ROW_GROUP_ROWS:
                    buffered = pa.concat_tables(pending)
                    writer.write_table(buffered.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                    rest = buffered.slice(ROW_GROUP_ROWS)
                    pending, pending_rows = [rest], rest.num_rows
                if chunk.num_rows:
                    progress(f"extract: {stats['rows']:,} rows")
            if stats["rows"] == 0:
                raise PipelineError(
                    f"extract: no rows between {start.isoformat()} and {end.isoformat()} in {warehouse.name} "
                    f"(extract.cutoff={extract.cutoff}, extract.window_days={extract.window_days})"
                )
            if pending_rows:
                writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
        finally:
            if writer is not None:
                writer.close()

    atomic_write(out, write)
    labelled = stats["labelled"]
    return {
        "rows": stats["rows"],
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "cutoff": cutoff_day.isoformat(),
        "snapshot_sha256": sha256_file(out),
        "positive_rate": round(stats["positives"] / labelled, 6) if labelled else None,
    }


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


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith("Traceback"):
        # DuckDB passes on an error raised in a Python filesystem (fsspec) with its traceback: name the error.
        raised = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception): ", line)]
        return raised[-1] if raised else lines[-1].strip()
    return lines[0]


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
    print(
        f"extract: {info['rows']:,} rows from {info['window_start']} to {info['window_end']} "
        f"(positive rate {info['positive_rate']}) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
