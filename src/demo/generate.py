"""Demo data: a seeded generator of customer-churn events, one Parquet file per month.

Each row is one customer observed at `event_time` with the features of `schema.features` and the label
`churned` (1 = the customer left within the following month). The world it simulates, and its two drift knobs
(`covariate_drift`, `concept_drift`), are demo/world.py's.

Every month is seeded from (seed, year, month) alone, and the knobs transform the same random draws, so
appending a month never changes earlier months; drifted months differ from undrifted ones only by the drift.

CLI: `python -m demo.generate --params params.yaml` writes every month of params.yaml `data`;
`--append-month 2026-01 --rows 2000 --concept-drift 1` writes one more month (the "next month's data").
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from demo.world import simulate_customers
from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import atomic_write
from pipeline.config import Section, load_params, parse_section


class DemoDataParams(Section):
    """params.yaml `data` as the demo generator reads it (`regenerate` is `make data`'s, pipeline.data)."""

    regenerate: str = ""
    dir: str = "data"
    seed: int
    start_month: str = Field(pattern=r"^\d{4}-\d{2}$")
    months: int = Field(gt=0)
    rows_per_month: int = Field(gt=0)
    covariate_drift: float = Field(ge=0)
    concept_drift: float = Field(ge=0)


def demo_params(params_path: str | Path) -> DemoDataParams:
    """The `data` section of params.yaml, checked as the generator needs it."""
    section = load_params(params_path).data
    if section is None:
        raise PipelineError(f"{params_path}: missing section 'data' (the demo generator's settings)")
    return parse_section(section.model_dump(), DemoDataParams, f"{params_path}: data")


EVENTS_SUBDIR = "events"

# The column order and Arrow types of every file (and of the extract snapshot).
ARROW_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("event_time", pa.timestamp("us")),
        ("tenure_months", pa.int64()),
        ("monthly_charges", pa.float64()),
        ("total_charges", pa.float64()),
        ("support_tickets", pa.int64()),
        ("avg_session_minutes", pa.float64()),
        ("num_products", pa.int64()),
        ("senior_citizen", pa.int64()),
        ("contract", pa.string()),
        ("payment_method", pa.string()),
        ("internet_service", pa.string()),
        ("region", pa.string()),
        ("churned", pa.int64()),
    ]
)

_WRITE_OPTIONS = {"compression": "zstd", "row_group_size": 1 << 20}


def parse_month(text: str) -> tuple[int, int]:
    """'2024-01' -> (2024, 1); anything else is a clear error."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise PipelineError(f"month '{text}': expected YYYY-MM, e.g. 2024-01")
    return int(match.group(1)), int(match.group(2))


def month_range(start_month: str, months: int) -> list[str]:
    year, month = parse_month(start_month)
    out = []
    for offset in range(months):
        y, m = divmod((year * 12 + month - 1) + offset, 12)
        out.append(f"{y:04d}-{m + 1:02d}")
    return out


def generate_month(
    month: str, n_rows: int, seed: int, covariate_drift: float = 0.0, concept_drift: float = 0.0
) -> pd.DataFrame:
    """One month of events, sorted by (event_time, customer_id); columns and dtypes as ARROW_SCHEMA."""
    if n_rows < 1:
        raise PipelineError(f"rows for {month}: must be at least 1, got {n_rows}")
    if covariate_drift < 0 or concept_drift < 0:
        raise PipelineError("covariate_drift and concept_drift must be >= 0")
    year, mon = parse_month(month)
    # Seeded from (seed, year, month) only: months are independent of each other and of the drift knobs.
    rng = np.random.default_rng([seed, year, mon])
    frame = simulate_customers(rng, year, mon, n_rows, covariate_drift, concept_drift)
    frame = frame.sort_values(["event_time", "customer_id"], kind="mergesort", ignore_index=True)
    return _with_schema_dtypes(frame)


def _with_schema_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    return to_arrow(frame).to_pandas()


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table with ARROW_SCHEMA and no pandas metadata (reproducible file bytes)."""
    table = pa.Table.from_pandas(frame[ARROW_SCHEMA.names], schema=ARROW_SCHEMA, preserve_index=False)
    return table.replace_schema_metadata(None)


def month_records(
    month: str, n_rows: int, seed: int, covariate_drift: float = 0.0, concept_drift: float = 0.0
) -> list[dict]:
    """One month of events as JSON-ready records (ISO timestamps, None for missing): for replaying traffic."""
    frame = generate_month(month, n_rows, seed, covariate_drift, concept_drift)
    frame["event_time"] = frame["event_time"].map(lambda t: t.isoformat())
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict(orient="records")
    ]


def write_month(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write one month atomically; the same frame gives the same bytes (pinned pyarrow, no timestamps)."""
    table = to_arrow(frame)
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, **_WRITE_OPTIONS))


def month_path(events_dir: str | Path, month: str) -> Path:
    return Path(events_dir) / f"{month}.parquet"


def generate_dataset(params: DemoDataParams, out_dir: str | Path, progress=None) -> list[Path]:
    """Write every month of params.yaml `data` to out_dir/events/YYYY-MM.parquet; returns the paths."""
    events_dir = Path(out_dir) / EVENTS_SUBDIR
    paths = []
    for month in month_range(params.start_month, params.months):
        frame = generate_month(
            month, params.rows_per_month, params.seed, params.covariate_drift, params.concept_drift
        )
        paths.append(write_month(frame, month_path(events_dir, month)))
        if progress:
            progress(f"generate: {month}: {len(frame)} rows, {frame['churned'].mean():.1%} churned")
    return paths


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", help="data directory (default: params.yaml data.dir)")
    parser.add_argument("--append-month", metavar="YYYY-MM", help="write only this month")
    parser.add_argument("--rows", type=int, help="rows for the appended month (default: data.rows_per_month)")
    parser.add_argument("--covariate-drift", type=float, help="for the appended month (default: params)")
    parser.add_argument("--concept-drift", type=float, help="for the appended month (default: params)")
    return parser.parse_args(argv)


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    data = demo_params(args.params)
    out_dir = Path(args.out) if args.out else Path(args.params).resolve().parent / data.dir

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.append_month is None:
        if any(v is not None for v in (args.rows, args.covariate_drift, args.concept_drift)):
            raise PipelineError("--rows/--covariate-drift/--concept-drift apply only with --append-month")
        paths = generate_dataset(data, out_dir, progress)
        print(f"generate: wrote {len(paths)} months to {out_dir / EVENTS_SUBDIR}")
        return 0

    month = args.append_month
    parse_month(month)
    frame = generate_month(
        month,
        args.rows if args.rows is not None else data.rows_per_month,
        data.seed,
        data.covariate_drift if args.covariate_drift is None else args.covariate_drift,
        data.concept_drift if args.concept_drift is None else args.concept_drift,
    )
    path = month_path(out_dir / EVENTS_SUBDIR, month)
    if path.exists():
        # Appending never rewrites history: a month already recorded stays as it is.
        if _parquet_bytes(frame) != path.read_bytes():
            raise PipelineError(f"{path}: already exists with other data; appending never rewrites a month")
        print(f"generate: {path} already holds exactly this month; nothing to do")
        return 0
    write_month(frame, path)
    print(f"generate: wrote {path} ({len(frame)} rows, {frame['churned'].mean():.1%} churned)")
    return 0


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(to_arrow(frame), sink, **_WRITE_OPTIONS)
    return sink.getvalue().to_pybytes()


if __name__ == "__main__":
    sys.exit(main())
