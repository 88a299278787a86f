"""Stage `validate`: the snapshot must honour the data contract in params.yaml `schema` (checked with pandera).

Checks: every column present with the right type, values in range, categories allowed, nulls only where
`nullable`, the label present and binary, at least `min_rows` rows. A failure stops the pipeline with one line
naming the file, column and rule, and leaves the previous validation report untouched.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from pipeline.config import SchemaParams, load_params
from pipeline.errors import PipelineError, cli_entrypoint
from pipeline.io import write_json


def _is_integer(series: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(series.dtype)


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(series.dtype) or pd.api.types.is_object_dtype(series.dtype)


def build_schema(schema: SchemaParams) -> pa.DataFrameSchema:
    """The pandera schema for a snapshot, derived from params.yaml `schema`."""
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
    return pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(
                lambda df: len(df) >= schema.min_rows,
                element_wise=False,
                name=f"at least {schema.min_rows} rows (schema.min_rows)",
            )
        ],
        strict=False,
    )


def _describe_failures(cases: pd.DataFrame) -> list[dict[str, Any]]:
    grouped = []
    # A missing column is reported by pandera with the column name as the failure case.
    missing = cases["check"].astype(str) == "column_in_dataframe"
    cases = cases.assign(column=cases["column"].where(~missing, cases["failure_case"]))
    for (column, check), rows in cases.groupby(["column", "check"], dropna=False, sort=False):
        is_type_rule = str(check).startswith("type is")  # its failure case is just "False"
        examples = [] if is_type_rule else rows["failure_case"].dropna().astype(str).unique()[:3].tolist()
        grouped.append(
            {
                "column": None if pd.isna(column) else str(column),
                "rule": str(check),
                "count": len(rows),
                "examples": examples,
            }
        )
    return grouped


def validate_snapshot(df: pd.DataFrame, schema: SchemaParams) -> dict[str, Any]:
    """Return a report dict; `passed` is False with `failures` listing each broken rule."""
    try:
        build_schema(schema).validate(df, lazy=True)
    except SchemaErrors as exc:
        failures = _describe_failures(exc.failure_cases)
        return {"passed": False, "rows": len(df), "failures": failures}
    positive_rate = float(df[schema.label].mean()) if len(df) else 0.0
    return {
        "passed": True,
        "rows": len(df),
        "failures": [],
        "positive_rate": positive_rate,
        "null_fraction": {k: float(v) for k, v in df.isna().mean().items() if v > 0},
    }


def format_failure(path: str | Path, failure: dict[str, Any]) -> str:
    where = f"column '{failure['column']}'" if failure["column"] else "table"
    examples = f" e.g. {', '.join(failure['examples'])}" if failure["examples"] else ""
    return f"{path}: {where} breaks rule '{failure['rule']}' ({failure['count']} failing{examples})"


def run_validate(params_path: str | Path, snapshot_path: str | Path, out_path: str | Path) -> dict[str, Any]:
    params = load_params(params_path)
    try:
        df = pd.read_parquet(snapshot_path)
    except (FileNotFoundError, OSError) as exc:
        raise PipelineError(f"{snapshot_path}: cannot read snapshot ({exc})") from exc
    report = validate_snapshot(df, params.schema)
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
