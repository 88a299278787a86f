"""Stage `validate`: the snapshot must honour the data contract in params.yaml `schema` (checked with pandera).

Checks: every column present with the right type, values in range, categories allowed, nulls only where
`nullable`, the label present and binary, at least `min_rows` rows. A failure stops the pipeline with one line
naming the file, column and rule, and leaves the previous validation report untouched.

The snapshot is read in chunks of `extract.chunk_rows` rows (pipeline.chunks), each checked by pandera, so
memory is bounded by the chunk, not the window. What needs the whole snapshot is summed over the chunks,
exactly: the row count (for `min_rows`), the positive rate, the null fractions, and each broken rule's count of
failing rows and first examples. The report is the same as for the whole table at once; only the order of
several broken rules may differ (first found, first listed).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pyarrow.parquet as pq
from pandera.errors import SchemaErrors

from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import write_json
from pipeline.chunks import iter_chunks, open_snapshot, pandas_schema
from pipeline.config import SchemaParams, load_params


def _is_integer(series: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(series.dtype)


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
        else:
            type_check = _is_integer if spec.type == "int" else _is_number
            checks.append(pa.Check(type_check, element_wise=False, name=f"type is {spec.type}"))
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

    def add_table_rule(self, rule: str) -> None:
        # Worded as pandera words a failed table-wide check, placed after the missing columns as pandera does.
        missing = [k for k in self.found if k[1] == "column_in_dataframe"]
        rest = [k for k in self.found if k[1] != "column_in_dataframe"]
        failure = {"column": None, "rule": rule, "count": 1, "examples": ["False"]}
        self.found = (
            {k: self.found[k] for k in missing} | {(None, rule): failure} | {k: self.found[k] for k in rest}
        )


def validate_chunks(chunks: Iterable[pd.DataFrame], schema: SchemaParams) -> dict[str, Any]:
    """Validate a snapshot given as consecutive chunks: the report of the whole table at once (several broken
    rules are listed in the order they were found).

    Return a report dict; `passed` is False with `failures` listing each broken rule."""
    checker = build_schema(schema)
    failures = _Failures()
    rows, positives = 0, 0
    nulls: dict[str, int] = {}
    for chunk in chunks:
        try:
            checker.validate(chunk, lazy=True)
        except SchemaErrors as exc:
            failures.add(exc.failure_cases)
        rows += len(chunk)
        if not failures.found:  # the pass report's figures; once a rule is broken only `rows` is reported
            positives += int(chunk[schema.label].sum())
            for column, count in chunk.isna().sum().items():
                nulls[column] = nulls.get(column, 0) + int(count)
    if rows < schema.min_rows:
        failures.add_table_rule(f"at least {schema.min_rows} rows (schema.min_rows)")
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
    return validate_chunks([df], schema)


def snapshot_frames(snapshot: pq.ParquetFile, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The snapshot as pandas chunks of at most `chunk_rows` rows; an empty file is one empty chunk."""
    empty = True
    for table in iter_chunks(snapshot, chunk_rows):
        empty = False
        yield table.to_pandas()
    if empty:
        yield pandas_schema(snapshot).empty_table().to_pandas()


def format_failure(path: str | Path, failure: dict[str, Any]) -> str:
    where = f"column '{failure['column']}'" if failure["column"] else "table"
    examples = f" e.g. {', '.join(failure['examples'])}" if failure["examples"] else ""
    return f"{path}: {where} breaks rule '{failure['rule']}' ({failure['count']} failing{examples})"


def run_validate(params_path: str | Path, snapshot_path: str | Path, out_path: str | Path) -> dict[str, Any]:
    params = load_params(params_path)
    snapshot = open_snapshot(snapshot_path)
    report = validate_chunks(snapshot_frames(snapshot, params.extract.chunk_rows), params.schema)
    if not report["passed"]:
        lines = [format_failure(snapshot_path, f) for f in report["failures"]]
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
