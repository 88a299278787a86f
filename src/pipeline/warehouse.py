"""The warehouse `extract` queries: DuckDB in-process over data files, or any database SQLAlchemy reaches.

DuckDB (the default) reads `warehouse.files` (Parquet or CSV; a relative path is relative to params.yaml;
`s3://bucket/prefix/*.parquet` and other object stores through fsspec, e.g. s3fs, with credentials from the
environment) as a view named `warehouse.table`. Each file is read with its own types (its Parquet schema, or
what DuckDB's sniffer finds in that CSV), widened where files differ (int + double -> double:
`_reader_options`), and before any query each file's contract columns are checked for the kind of type the
contract asks (`check_file_types`): DuckDB's multi-file reader would otherwise cast every file to the first
file's types (14.5 -> 14, "14" -> 14) before `validate` could see them. Errors name the file.

With `WAREHOUSE_URL` set (a SQLAlchemy URL such as postgresql+psycopg://user@host/db) the query runs in that
database instead. Both stream the result in Arrow batches of at most `chunk_rows` rows, and both give the
columns the data contract names the same Arrow types (`schema_types`), so the same rows make the same snapshot
whichever warehouse served them.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from mlcore.errors import PipelineError
from pipeline.config import Params, SchemaParams, WarehouseParams

WAREHOUSE_URL_ENV = "WAREHOUSE_URL"
_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "category": pa.string()}
_BIND = re.compile(r"(?<![:\w]):(window_start|window_end)\b")


# --- types ----------------------------------------------------------------------------------------


def schema_types(schema: SchemaParams) -> dict[str, pa.DataType]:
    """The Arrow type of every column the data contract names."""
    types = {name: _ARROW_TYPES[spec.type] for name, spec in schema.features.items()}
    types[schema.id_column] = pa.string()
    types[schema.time_column] = pa.timestamp("us")
    types[schema.label] = pa.int64()
    return types


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
    """DuckDB in-process, with a view over the data files, each checked against the contract's types."""

    def __init__(self, warehouse: WarehouseParams, base_dir: Path, schema: SchemaParams) -> None:
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
            paths = [row[0] for row in self._con.execute("SELECT file FROM glob(?)", [files]).fetchall()]
            if not paths:
                raise PipelineError(f"params.yaml: warehouse.files: No files found that match '{files}'")
            found = check_file_types(self._con, reader, paths, schema)
            source = f"{reader}({_sql_str(files)}, {_reader_options(reader, found, schema)})"
            self._con.execute(f'CREATE VIEW "{warehouse.table}" AS SELECT * FROM {source}')
        except duckdb.Error as exc:
            self.close()
            raise _duckdb_error(exc, "params.yaml: warehouse.files") from exc
        except PipelineError:
            self.close()
            raise

    def scalar(self, sql: str, binds: dict | None = None):
        """One value of `sql` (`:name` binds, as in extract.query)."""
        try:
            used = {name: (binds or {})[name] for name in _BIND.findall(sql)}
            return self._con.execute(_BIND.sub(r"$\1", sql), used or None).fetchall()[0][0]
        except self._duckdb.Error as exc:
            raise _duckdb_error(exc, f"warehouse ({self.name})") from exc

    def batches(self, query: str, binds: dict, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        try:
            used = {name: binds[name] for name in _BIND.findall(query)}  # DuckDB refuses unused values
            sql = _BIND.sub(r"$\1", query)
            reader = self._con.sql(sql, params=used or None).to_arrow_reader(chunk_rows)
            yield from reader
        except self._duckdb.Error as exc:
            raise _duckdb_error(exc, "params.yaml: extract.query") from exc

    def close(self) -> None:
        self._con.close()
        shutil.rmtree(self._spill_dir, ignore_errors=True)


# --- what the files hold -------------------------------------------------------------------------

# DuckDB's type names, by the kind of type the contract asks of a column: (described as, accepts).
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
_INTEGER_TYPES |= {f"U{name}" for name in _INTEGER_TYPES}
_KINDS = {
    "int": ("an integer type", lambda t: t in _INTEGER_TYPES),
    "float": (
        "a number type",
        lambda t: t in _INTEGER_TYPES or t in ("FLOAT", "DOUBLE") or t.startswith("DECIMAL"),
    ),
    "category": ("text", lambda t: t == "VARCHAR" or t.startswith("ENUM")),
    "id": ("text or an integer type", lambda t: t == "VARCHAR" or t in _INTEGER_TYPES),
    "time": ("a timestamp or a date", lambda t: t.startswith("TIMESTAMP") or t == "DATE"),
}


def contract_columns(schema: SchemaParams) -> dict[str, tuple[str, str, bool]]:
    """Each contract column -> (the kind of type its files must hold, the params.yaml key, nullable)."""
    columns = {
        schema.id_column: ("id", "schema.id_column", False),
        schema.time_column: ("time", "schema.time_column", False),
        schema.label: ("int", "schema.label", False),
    }
    for name, spec in schema.features.items():
        columns[name] = (spec.type, f"schema.features.{name}: {spec.type}", spec.nullable)
    return columns


def check_file_types(con, reader: str, paths: list[str], schema: SchemaParams) -> dict[str, dict[str, str]]:
    """Refuse a file whose contract columns hold the wrong kind of type (a float or text in an int column, text
    in a number column, ...) or that lacks a column the contract does not let be null: one line naming the
    first culprit file and column. A column that holds only nulls in a file may have any type there.

    Return each file's columns and their types, in the file's order."""
    problems: list[str] = []
    columns: dict[str, dict[str, str]] = {}
    for path in paths:
        described = con.execute(
            f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {reader}(?))", [path]
        )
        found = dict(described.fetchall())
        columns[path] = found
        missing = []
        for name, (kind, key, nullable) in contract_columns(schema).items():
            wanted, accepts = _KINDS[kind]
            if name not in found:
                if not nullable:
                    missing.append(name)
            elif not accepts(found[name]) and _holds_values(con, reader, path, name):
                if kind == "int" and nullable and found[name] in ("FLOAT", "DOUBLE"):
                    # pandas writes an int column with nulls as float64: fine while every value is whole
                    fraction = _fractional_value(con, reader, path, name)
                    if fraction is None:
                        continue
                    wanted = f"whole numbers (it holds {fraction})"
                problems.append(
                    f"{path}: column '{name}' holds {found[name]} where the contract ({key}) needs {wanted}: "
                    "fix the file's type, or the contract"
                )
        if missing:
            names = ", ".join(f"'{name}'" for name in missing[:3]) + (", ..." if len(missing) > 3 else "")
            plural = "s" if len(missing) > 1 else ""
            problems.append(
                f"{path}: no column{plural} {names}, which params.yaml schema requires{_hint(found)}"
            )
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PipelineError(problems[0] + more)
    return columns


# The type a contract column gets when files hold different types of the kind it asks for.
_WIDEST = {"int": "BIGINT", "float": "DOUBLE", "category": "VARCHAR", "id": "VARCHAR", "time": "TIMESTAMP"}


def _reader_options(reader: str, found: dict[str, dict[str, str]], schema: SchemaParams) -> str:
    """How the view reads the files so that each keeps its own values, widened where files differ (int + double
    -> double). Parquet, or CSV files whose columns differ in order: union_by_name (for CSV it sniffs every file
    again: 2x the CPU). CSV files in one layout: the contract columns' types given, as the check found them."""
    if reader != "read_csv_auto" or len({tuple(columns) for columns in found.values()}) > 1:
        return "union_by_name = true"
    types = {}
    for name, (kind, _, _) in contract_columns(schema).items():
        held = {columns[name] for columns in found.values() if name in columns}
        if held:
            types[name] = held.pop() if len(held) == 1 else _WIDEST[kind]
    return "types = {" + ", ".join(f"{_sql_str(name)}: {_sql_str(t)}" for name, t in types.items()) + "}"


def _holds_values(con, reader: str, path: str, column: str) -> bool:
    quoted = '"' + column.replace('"', '""') + '"'
    return con.execute(f"SELECT count({quoted}) > 0 FROM {reader}(?)", [path]).fetchall()[0][0]


def _fractional_value(con, reader: str, path: str, column: str) -> float | None:
    """A non-whole value of the column in the file, or None when every value is a whole number."""
    quoted = '"' + column.replace('"', '""') + '"'
    sql = (
        f"SELECT {quoted} FROM {reader}(?) WHERE {quoted} IS NOT NULL AND {quoted} <> floor({quoted}) LIMIT 1"
    )
    found = con.execute(sql, [path]).fetchall()
    return found[0][0] if found else None


def _hint(found: dict[str, str]) -> str:
    if len(found) == 1:  # DuckDB reads a CSV it cannot parse (truncated, another delimiter) as one column
        return f"; it reads as one column '{next(iter(found))[:40]}...': is it truncated, or not comma-separated?"
    return ""


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

    def scalar(self, sql: str, binds: dict | None = None):
        """One value of `sql` (`:name` binds, as in extract.query)."""
        try:
            with self._engine.connect() as conn:
                return conn.execute(self._sa.text(sql), binds or {}).scalar()
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
    return DuckDBWarehouse(params.warehouse, base_dir, params.schema)


# --- messages -------------------------------------------------------------------------------------


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _duckdb_error(exc: BaseException, where: str) -> PipelineError:
    """One line for a DuckDB error: prefixed by the file it names (DuckDB puts it on a later line, e.g. a CSV
    row that ends early), else by `where`; with the detail line that says what was wrong in the file."""
    text = str(exc)
    named = (
        re.search(r"^\s*file = (.+?)\s*$", text, re.M)
        or re.search(r'Failed to read file "([^"]+)"', text)
        or re.search(r"^Current file: (.+?)\s*$", text, re.M)
    )
    if named is None:
        return PipelineError(f"{where}: {_first_line(exc)}")
    detail = re.search(r"^(Expected Number of Columns.*|Error when converting column.*)$", text, re.M)
    return PipelineError(
        f"{named.group(1)}: {_first_line(exc)}" + (f" ({detail.group(1)})" if detail else "")
    )


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith("Traceback"):
        # DuckDB passes on an error raised in a Python filesystem (fsspec) with its traceback: name the error.
        raised = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception): ", line)]
        return raised[-1] if raised else lines[-1].strip()
    return lines[0]
