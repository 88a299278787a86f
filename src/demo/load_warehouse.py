"""Load the data files into a database table, so `extract` can run against a real warehouse.

    WAREHOUSE_URL=postgresql+psycopg://user@host/db python -m demo.load_warehouse --params params.yaml
    WAREHOUSE_URL=postgresql+psycopg://user@host/db dvc repro      # extract now queries the database

It (re)creates the table `warehouse.table` with column types from the files (text, timestamp, bigint,
double precision) and loads every file of `warehouse.files`, one file at a time (memory: one file). PostgreSQL
loads with COPY; other databases with batched INSERTs. This is a demo and test helper: a real warehouse is
filled by its own pipelines.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlcore.errors import PipelineError, cli_entrypoint
from pipeline.config import load_params
from pipeline.warehouse import WAREHOUSE_URL_ENV

_INSERT_BATCH = 10_000


def _sql_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_integer(arrow_type):
        return "bigint"
    if pa.types.is_floating(arrow_type):
        return "double precision"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    return "text"


def _read(path: Path) -> pa.Table:
    if path.suffix == ".csv":
        import pyarrow.csv as pacsv

        return pacsv.read_csv(path)
    return pq.read_table(path)


def load_files(url: str, table: str, files: list[Path]) -> int:
    """Replace `table` at `url` with the rows of `files`; returns the number of rows loaded."""
    import sqlalchemy as sa

    if not files:
        raise PipelineError("warehouse.files: no files to load")
    schema = pq.read_schema(files[0]) if files[0].suffix != ".csv" else _read(files[0]).schema
    columns = ", ".join(f'"{field.name}" {_sql_type(field.type)}' for field in schema)
    engine = sa.create_engine(url)
    rows = 0
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
            conn.execute(sa.text(f'CREATE TABLE "{table}" ({columns})'))
            for path in files:
                data = _read(path).select(schema.names)
                if engine.dialect.name == "postgresql":
                    _copy_postgres(conn, table, data)
                else:
                    _insert(conn, table, data)
                rows += data.num_rows
                print(f"load_warehouse: {path.name}: {rows:,} rows so far", file=sys.stderr, flush=True)
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise PipelineError(f"{WAREHOUSE_URL_ENV}: loading table '{table}' failed: {reason}") from exc
    finally:
        engine.dispose()
    return rows


def _copy_postgres(conn, table: str, data: pa.Table) -> None:
    import pyarrow.csv as pacsv

    buffer = io.BytesIO()
    pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False))
    cursor = conn.connection.driver_connection.cursor()
    names = ", ".join(f'"{name}"' for name in data.column_names)
    with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN (FORMAT csv)') as copy:
        copy.write(buffer.getvalue())


def _insert(conn, table: str, data: pa.Table) -> None:
    import sqlalchemy as sa

    names = data.column_names
    statement = sa.text(
        f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join(":" + n for n in names)})'
    )
    for batch in data.to_batches(_INSERT_BATCH):
        conn.execute(statement, batch.to_pylist())


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.load_warehouse", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--url", help=f"SQLAlchemy URL (default: ${WAREHOUSE_URL_ENV})")
    args = parser.parse_args(argv)
    url = args.url or os.environ.get(WAREHOUSE_URL_ENV)
    if not url:
        raise PipelineError(f"{WAREHOUSE_URL_ENV}: not set (or pass --url): where should the data go?")
    params = load_params(args.params)
    pattern = params.warehouse.files
    if not Path(pattern).is_absolute():
        pattern = str(Path(args.params).resolve().parent / pattern)
    files = [Path(p) for p in sorted(glob.glob(pattern))]
    if not files:
        raise PipelineError(f"params.yaml: warehouse.files: no files to load match '{pattern}'")
    rows = load_files(url, params.warehouse.table, files)
    print(f"load_warehouse: {rows:,} rows from {len(files)} files into table '{params.warehouse.table}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
