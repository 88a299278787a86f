"""Stage `validate`: the snapshot must honour the data contract in params.yaml `schema` (checked with pandera).

Checks: every column present with the right type, values in range, categories allowed, nulls only where
`nullable`, the label present and binary, one row per (`schema.id_column`, `schema.time_column`), at least
`min_rows` rows. The key is the pair, not the id alone: event data observes a customer again at later times
(the demo: one row per customer per observation), but the same customer twice at the same time is a row loaded
twice (an export that overlaps, a month file copied) and would count twice in training and evaluation. A failure stops the pipeline with one line
naming the file, column and rule, and leaves the previous validation report untouched.

The snapshot is read in chunks of `extract.chunk_rows` rows (pipeline.chunks), each checked by pandera, so
memory is bounded by the chunk, not the window. What needs the whole snapshot is summed over the chunks,
exactly: the row count (for `min_rows`), the positive rate, the null fractions, each broken rule's count of
failing rows and first examples, and the duplicate keys (counted as the chunks stream by when the snapshot is in
(time, id) order, as the extract query writes it; otherwise grouped by DuckDB over the file, spilling to disk
beyond `warehouse.duckdb_memory_limit`). The report is the same as for the whole table at once; only the order of
several broken rules may differ (first found, first listed).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow.parquet as pq
from pandera.errors import SchemaErrors

from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import write_json
from pipeline.chunks import iter_chunks, open_snapshot, pandas_schema
from pipeline.config import ExtractParams, SchemaParams, load_params


def _is_integer(series: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(series.dtype)


def _is_integer_or_float(series: pd.Series) -> bool:
    # A nullable int column: Parquet holds int64 with nulls, which pandas reads as float64 (NaN for null).
    return _is_integer(series) or pd.api.types.is_float_dtype(series.dtype)


def _whole_numbers(series: pd.Series) -> pd.Series:
    # Row by row, so a 14.5 is reported with its value; nulls are left to the `nullable` rule, any other dtype
    # to the type rule.
    if not pd.api.types.is_float_dtype(series.dtype):
        return pd.Series(True, index=series.index)
    return series.isna() | (np.isfinite(series) & (series == np.floor(series)))


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(series.dtype) or pd.api.types.is_object_dtype(series.dtype)


def build_schema(schema: SchemaParams) -> pa.DataFrameSchema:
    """The pandera schema one chunk of a snapshot must honour, derived from params.yaml `schema`.

    Row-count rules (`min_rows`) need the whole snapshot; `validate_chunks` checks them on the running total."""
    columns: dict[str, pa.Column] = {
        schema.id_column: pa.Column(
            checks=pa.Check(_is_text, element_wise=False, name="type is text"), nullable=False
        ),
        schema.time_column: pa.Column("datetime64[us]", coerce=True, nullable=False),
        schema.label: pa.Column(
            checks=[pa.Check(_is_integer, element_wise=False, name="type is integer"), pa.Check.isin([0, 1])],
            nullable=False,
        ),
    }
    for name, spec in schema.features.items():
        checks: list[pa.Check] = []
        if spec.type == "category":
            checks.append(pa.Check(_is_text, element_wise=False, name="type is text"))
            checks.append(pa.Check.isin(list(spec.allowed or [])))
        elif spec.type == "int" and spec.nullable:
            checks.append(pa.Check(_is_integer_or_float, element_wise=False, name="type is int"))
            checks.append(pa.Check(_whole_numbers, name="whole numbers"))
        else:
            type_check = _is_integer if spec.type == "int" else _is_number
            checks.append(pa.Check(type_check, element_wise=False, name=f"type is {spec.type}"))
        if spec.type != "category":
            if spec.min is not None:
                checks.append(pa.Check.ge(spec.min))
            if spec.max is not None:
                checks.append(pa.Check.le(spec.max))
        columns[name] = pa.Column(checks=checks, nullable=spec.nullable)
    return pa.DataFrameSchema(columns, strict=False)


class _Failures:
    """Broken rules summed over chunks: rows failing a row rule add up; a column rule (missing column, wrong
    type: the same in every chunk) counts once; examples are the first three distinct failing values."""

    def __init__(self) -> None:
        self.found: dict[tuple[str | None, str], dict[str, Any]] = {}

    def add(self, cases: pd.DataFrame) -> None:
        # A missing column is reported by pandera with the column name as the failure case.
        missing = cases["check"].astype(str) == "column_in_dataframe"
        cases = cases.assign(column=cases["column"].where(~missing, cases["failure_case"]))
        for (column, check), rows in cases.groupby(["column", "check"], dropna=False, sort=False):
            key = (None if pd.isna(column) else str(column), str(check))
            is_type_rule = key[1].startswith("type is")  # its failure case is just "False"
            examples = [] if is_type_rule else rows["failure_case"].dropna().astype(str).unique().tolist()
            seen = self.found.get(key)
            if seen is None:
                self.found[key] = {
                    "column": key[0],
                    "rule": key[1],
                    "count": len(rows),
                    "examples": examples[:3],
                }
            elif rows["index"].notna().any():  # a row rule: these are other rows
                seen["count"] += len(rows)
                unseen = [e for e in examples if e not in seen["examples"]]
                seen["examples"] = (seen["examples"] + unseen)[:3]

    def add_rule(self, failure: dict[str, Any]) -> None:
        self.found[(failure["column"], failure["rule"])] = failure

    def add_table_rule(self, rule: str) -> None:
        # Worded as pandera words a failed table-wide check, placed after the missing columns as pandera does.
        missing = [k for k in self.found if k[1] == "column_in_dataframe"]
        rest = [k for k in self.found if k[1] != "column_in_dataframe"]
        failure = {"column": None, "rule": rule, "count": 1, "examples": ["False"]}
        self.found = (
            {k: self.found[k] for k in missing} | {(None, rule): failure} | {k: self.found[k] for k in rest}
        )


Regroup = Callable[[str], list[tuple]]  # a SQL query over the relation "snapshot" -> its rows


class _DuplicateKeys:
    """Rows that repeat an (id, time) key. A snapshot in (time, id) order (the extract query's ORDER BY) has its
    repeats next to each other, so they are counted as the chunks stream by, in constant memory; if the order
    breaks, `regroup` runs a GROUP BY over the whole snapshot in DuckDB instead (within its memory limit,
    spilling to disk). Either way: count = the rows that share their key with another row, examples = the first
    three keys repeated, in snapshot order."""

    def __init__(self, schema: SchemaParams, regroup: Regroup) -> None:
        self.columns = [schema.id_column, schema.time_column]
        self.rule = f"one row per ({', '.join(self.columns)})"
        self._regroup = regroup
        self._ordered, self._seen = True, False
        self._open: tuple | None = None  # the key of the last row so far, and how many rows in a row hold it
        self._open_rows = 0
        self._count, self._examples = 0, []

    def add(self, chunk: pd.DataFrame) -> None:
        if not self._ordered or chunk.empty or not set(self.columns) <= set(chunk.columns):
            return  # a missing column is its own broken rule
        self._seen = True
        ids, times = (chunk[c].reset_index(drop=True) for c in self.columns)
        previous = (ids.shift(), times.shift())
        if self._open is not None:
            previous[0].iloc[0], previous[1].iloc[0] = self._open
        backwards = (times < previous[1]) | ((times == previous[1]) & (ids < previous[0]))
        if backwards.any():
            self._ordered = False
            return
        same = ((ids == previous[0]) & (times == previous[1])).to_numpy()  # the key of the row before
        starts = np.flatnonzero(~same)  # the first row of each run of one key
        if not len(starts):  # the whole chunk continues the open run
            self._open_rows += len(same)
            return
        self._close(self._open, self._open_rows + int(starts[0]))
        sizes = np.diff(np.append(starts, len(same)))
        repeated = np.flatnonzero(sizes[:-1] > 1)  # runs closed in this chunk that repeat a key
        self._count += int(sizes[repeated].sum())
        for run in repeated[: max(0, 3 - len(self._examples))]:
            self._example((ids.iloc[starts[run]], times.iloc[starts[run]]), int(sizes[run]))
        self._open = (ids.iloc[starts[-1]], times.iloc[starts[-1]])
        self._open_rows = int(sizes[-1])

    def _close(self, key: tuple | None, rows: int) -> None:
        if key is not None and rows > 1:
            self._count += rows
            self._example(key, rows)

    def _example(self, key: tuple, rows: int) -> None:
        if len(self._examples) < 3:
            self._examples.append(f"{key[0]} at {key[1]} ({rows} rows)")

    def failure(self) -> dict[str, Any] | None:
        if not self._seen:
            return None
        if self._ordered:
            self._close(self._open, self._open_rows)
            count, examples = self._count, self._examples
        else:
            [(count, examples)] = self._regroup(_duplicates_sql(self.columns))
        if not count:
            return None
        return {"column": None, "rule": self.rule, "count": int(count), "examples": examples}


def _duplicates_sql(columns: list[str]) -> str:
    """(rows that repeat a key, the first three such keys as examples) over the relation `snapshot`."""
    id_, time = (f'"{c}"' for c in columns)
    example = f"{id_}::VARCHAR || ' at ' || {time}::VARCHAR || ' (' || count(*) || ' rows)'"
    return (
        "SELECT sum(n)::BIGINT, list(example ORDER BY first)[:3] FROM ("
        f" SELECT count(*) AS n, min(row) AS first, {example} AS example FROM snapshot"
        f" WHERE {id_} IS NOT NULL AND {time} IS NOT NULL GROUP BY {id_}, {time} HAVING count(*) > 1)"
    )


def regroup_file(path: str | Path, memory_limit: str) -> Regroup:
    """Run a query over the Parquet file at `path` as the relation `snapshot` (with its row number as `row`)."""

    def run(sql: str) -> list[tuple]:
        with tempfile.TemporaryDirectory(prefix="validate-duckdb-") as spill:
            con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": spill})
            try:
                con.read_parquet(str(path), file_row_number=True).create_view("parquet")
                con.execute("CREATE TEMP VIEW snapshot AS SELECT *, file_row_number AS row FROM parquet")
                return con.execute(sql).fetchall()
            finally:
                con.close()

    return run


def regroup_frame(df: pd.DataFrame) -> Regroup:
    """Run a query over a DataFrame in memory as the relation `snapshot`."""

    def run(sql: str) -> list[tuple]:
        with duckdb.connect() as con:
            con.register("frame", df.reset_index(drop=True))
            con.execute("CREATE TEMP VIEW snapshot AS SELECT *, row_number() OVER () AS row FROM frame")
            return con.execute(sql).fetchall()

    return run


def validate_chunks(chunks: Iterable[pd.DataFrame], schema: SchemaParams, regroup: Regroup) -> dict[str, Any]:
    """Validate a snapshot given as consecutive chunks: the report of the whole table at once (several broken
    rules are listed in the order they were found). `regroup` queries the whole snapshot when the duplicate-key
    rule needs it (`regroup_file`, `regroup_frame`).

    Return a report dict; `passed` is False with `failures` listing each broken rule."""
    checker = build_schema(schema)
    failures = _Failures()
    rows, positives = 0, 0
    nulls: dict[str, int] = {}
    keys = _DuplicateKeys(schema, regroup)
    for chunk in chunks:
        try:
            checker.validate(chunk, lazy=True)
        except SchemaErrors as exc:
            failures.add(exc.failure_cases)
        keys.add(chunk)
        rows += len(chunk)
        if not failures.found:  # the pass report's figures; once a rule is broken only `rows` is reported
            positives += int(chunk[schema.label].sum())
            for column, count in chunk.isna().sum().items():
                nulls[column] = nulls.get(column, 0) + int(count)
    duplicates = keys.failure()
    if duplicates is not None:
        failures.add_rule(duplicates)
    if rows < schema.min_rows:
        failures.add_table_rule(min_rows_rule(schema))
    if failures.found:
        return {"passed": False, "rows": rows, "failures": list(failures.found.values())}
    return {
        "passed": True,
        "rows": rows,
        "failures": [],
        "positive_rate": positives / rows if rows else 0.0,
        "null_fraction": {k: v / rows for k, v in nulls.items() if v > 0},
    }


def validate_snapshot(df: pd.DataFrame, schema: SchemaParams) -> dict[str, Any]:
    """The report for a whole table in memory (one chunk)."""
    return validate_chunks([df], schema, regroup_frame(df))


def snapshot_frames(snapshot: pq.ParquetFile, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The snapshot as pandas chunks of at most `chunk_rows` rows; an empty file is one empty chunk."""
    empty = True
    for table in iter_chunks(snapshot, chunk_rows):
        empty = False
        yield table.to_pandas()
    if empty:
        yield pandas_schema(snapshot).empty_table().to_pandas()


def min_rows_rule(schema: SchemaParams) -> str:
    return f"at least {schema.min_rows} rows (schema.min_rows)"


def too_few_rows(path: str | Path, rows: int, schema: SchemaParams, extract: ExtractParams) -> str:
    """The min_rows failure in terms of the keys that decide the row count: the window, its cutoff, min_rows."""
    cutoff = "the newest event (extract.cutoff: latest)" if extract.cutoff == "latest" else extract.cutoff
    if extract.cutoff != "latest":
        cutoff += " (extract.cutoff)"
    return (
        f"{path}: the window of {extract.window_days} days (extract.window_days) up to {cutoff} holds {rows} "
        f"rows; schema.min_rows is {schema.min_rows}: lower schema.min_rows or widen the window"
    )


def format_failure(path: str | Path, failure: dict[str, Any]) -> str:
    where = f"column '{failure['column']}'" if failure["column"] else "table"
    examples = f" e.g. {', '.join(failure['examples'])}" if failure["examples"] else ""
    return f"{path}: {where} breaks rule '{failure['rule']}' ({failure['count']} failing{examples})"


def run_validate(params_path: str | Path, snapshot_path: str | Path, out_path: str | Path) -> dict[str, Any]:
    params = load_params(params_path)
    snapshot = open_snapshot(snapshot_path)
    frames = snapshot_frames(snapshot, params.extract.chunk_rows)
    regroup = regroup_file(snapshot_path, params.warehouse.duckdb_memory_limit)
    report = validate_chunks(frames, params.schema, regroup)
    if not report["passed"]:
        too_few = too_few_rows(snapshot_path, report["rows"], params.schema, params.extract)
        lines = [
            too_few if f["rule"] == min_rows_rule(params.schema) else format_failure(snapshot_path, f)
            for f in report["failures"]
        ]
        more = f" (+{len(lines) - 1} more rule(s) broken)" if len(lines) > 1 else ""
        raise PipelineError(lines[0] + more)
    write_json(out_path, report)
    return report


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--snapshot", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    report = run_validate(args.params, args.snapshot, args.out)
    print(f"validate: {report['rows']} rows pass the schema (positive rate {report['positive_rate']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
