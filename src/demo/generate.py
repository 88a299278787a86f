"""Demo data: a seeded generator of customer-churn events, one Parquet file per month.

Each row is one customer observed at `event_time` with the features of `schema.features` and the label
`churned` (1 = the customer left within the following month). The world it simulates:

- contracts, internet service, payment methods and regions with realistic shares; tenure depends on the
  contract, charges on the service and number of products; `total_charges` is missing for brand-new customers
  (and a few others), `avg_session_minutes` is missing when usage tracking did not report;
- churn follows a logistic model of the features plus an unobserved "satisfaction" term, so a good model
  reaches a ROC AUC of about 0.8, not 1.0, and about one customer in five churns.

Two knobs simulate change:
- `covariate_drift` (0 = none, 1 = strong) shifts who the customers are: more fiber and month-to-month
  contracts, higher charges, more support tickets, shorter sessions.
- `concept_drift` (0 = none, 1 = strong) changes how features relate to churn: price and region start to
  matter, fiber and electronic checks stop predicting churn, contract length protects less. A model trained
  before the change gets clearly worse after it; one retrained on changed data recovers.

Every month is seeded from (seed, year, month) alone, and the knobs transform the same random draws, so
appending a month never changes earlier months; drifted months differ from undrifted ones only by the drift.

CLI: `python -m demo.generate --params params.yaml` writes every month of params.yaml `data`;
`--append-month 2026-01 --rows 2000 --concept-drift 1` writes one more month (the "next month's data").
"""

from __future__ import annotations

import argparse
import calendar
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

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

CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENT_METHODS = ["bank-transfer", "credit-card", "electronic-check", "mailed-check"]
INTERNET_SERVICES = ["dsl", "fiber", "none"]
REGIONS = ["east", "north", "south", "west"]

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

# Shares before (drift 0) and after (drift 1) covariate drift; in between they are interpolated.
_CONTRACT_SHARES = ([0.52, 0.27, 0.21], [0.68, 0.20, 0.12])
_INTERNET_SHARES = ([0.36, 0.44, 0.20], [0.20, 0.70, 0.10])
_PAYMENT_SHARES = ([0.22, 0.22, 0.34, 0.22], [0.25, 0.30, 0.30, 0.15])
_REGION_SHARES = ([0.27, 0.24, 0.26, 0.23], [0.22, 0.22, 0.34, 0.22])

# Churn log-odds coefficients before (0) and after (1) concept drift.
_COEF_BEFORE = {
    "intercept": -2.25,
    "month-to-month": 1.25,
    "two-year": -1.35,
    "tenure": -0.032,  # per month
    "charges": 0.012,  # per currency unit above 70
    "tickets": 0.38,
    "electronic-check": 0.65,
    "fiber": 0.55,
    "senior": 0.35,
    "sessions": -0.025,  # per minute above 30
    "sessions_missing": 0.30,
    "products": -0.18,  # per product beyond the first
    "south": 0.0,
    "west": 0.0,
}
_COEF_AFTER = {
    "intercept": -2.45,
    "month-to-month": 0.25,
    "two-year": -0.30,
    "tenure": -0.004,
    "charges": 0.040,
    "tickets": -0.10,
    "electronic-check": -0.55,
    "fiber": -0.80,
    "senior": -0.35,
    "sessions": 0.020,
    "sessions_missing": -0.30,
    "products": 0.30,
    "south": 1.30,
    "west": -0.80,
}
# Standard deviation of the unobserved satisfaction term: keeps the best achievable ROC AUC near 0.8.
_LATENT_SD = 0.9


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


def _choice(
    u: np.ndarray, before: list[float], after: list[float], drift: float, labels: list[str]
) -> np.ndarray:
    """Categorical draw by inverse CDF of shared uniforms; shares move with `drift` (extrapolated > 1)."""
    shares = np.clip(np.asarray(before) + drift * (np.asarray(after) - np.asarray(before)), 0.01, None)
    cdf = np.cumsum(shares / shares.sum())
    idx = np.minimum(np.searchsorted(cdf, u, side="right"), len(labels) - 1)
    return np.asarray(labels, dtype=object)[idx]


def _coefficients(concept_drift: float) -> dict[str, float]:
    return {k: _COEF_BEFORE[k] + concept_drift * (_COEF_AFTER[k] - _COEF_BEFORE[k]) for k in _COEF_BEFORE}


def churn_log_odds(frame: pd.DataFrame, concept_drift: float) -> np.ndarray:
    """The observable part of the churn log-odds for each row (the true model, minus the hidden term)."""
    c = _coefficients(concept_drift)
    sessions = frame["avg_session_minutes"].to_numpy(dtype=float)
    sessions_missing = np.isnan(sessions)
    return (
        c["intercept"]
        + c["month-to-month"] * (frame["contract"] == "month-to-month").to_numpy()
        + c["two-year"] * (frame["contract"] == "two-year").to_numpy()
        + c["tenure"] * frame["tenure_months"].to_numpy()
        + c["charges"] * (frame["monthly_charges"].to_numpy() - 70.0)
        + c["tickets"] * np.minimum(frame["support_tickets"].to_numpy(), 6)
        + c["electronic-check"] * (frame["payment_method"] == "electronic-check").to_numpy()
        + c["fiber"] * (frame["internet_service"] == "fiber").to_numpy()
        + c["senior"] * frame["senior_citizen"].to_numpy()
        + c["sessions"] * np.where(sessions_missing, 0.0, np.minimum(sessions, 120.0) - 30.0)
        + c["sessions_missing"] * sessions_missing
        + c["products"] * (frame["num_products"].to_numpy() - 1)
        + c["south"] * (frame["region"] == "south").to_numpy()
        + c["west"] * (frame["region"] == "west").to_numpy()
    )


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
    n = n_rows
    cov = covariate_drift

    # All random draws first, in a fixed order, so the knobs only transform them.
    u_contract, u_internet, u_payment, u_region = (rng.random(n) for _ in range(4))
    u_senior = rng.random(n)
    tenure_draw = rng.standard_gamma(1.4, n)
    products_draw = rng.poisson(1.1, n)
    charges_noise = rng.normal(0.0, 9.0, n)
    total_noise = rng.uniform(0.92, 1.06, n)
    u_total_missing = rng.random(n)
    ticket_uniform = rng.random(n)
    session_draw = rng.normal(0.0, 0.55, n)
    u_session_missing = rng.random(n)
    latent = rng.normal(0.0, _LATENT_SD, n)
    u_label = rng.random(n)
    seconds = rng.integers(0, calendar.monthrange(year, mon)[1] * 86400, n)
    id_numbers = rng.permutation(n)

    contract = _choice(u_contract, *_CONTRACT_SHARES, cov, CONTRACTS)
    internet = _choice(u_internet, *_INTERNET_SHARES, cov, INTERNET_SERVICES)
    payment = _choice(u_payment, *_PAYMENT_SHARES, cov, PAYMENT_METHODS)
    region = _choice(u_region, *_REGION_SHARES, cov, REGIONS)
    senior = (u_senior < 0.16).astype(np.int64)

    mean_tenure = np.select([contract == "month-to-month", contract == "one-year"], [14.0, 32.0], 52.0)
    tenure = np.round(tenure_draw / 1.4 * mean_tenure * (1 - 0.25 * min(cov, 2)))
    tenure = np.clip(tenure, 0, 120).astype(np.int64)

    num_products = np.clip(1 + products_draw + (internet == "fiber"), 1, 10).astype(np.int64)
    base = np.select([internet == "fiber", internet == "dsl"], [82.0, 52.0], 22.0)
    charges = (base + 9.0 * (num_products - 1) + charges_noise) * (1 + 0.15 * cov)
    charges = np.round(np.clip(charges, 5.0, 500.0), 2)

    total = np.round(np.clip(charges * tenure * total_noise, 0.0, 100000.0), 2)
    total = np.where((tenure == 0) | (u_total_missing < 0.015), np.nan, total)

    ticket_rate = 0.6 + 0.5 * (internet == "fiber") + 0.3 * senior + 0.5 * cov
    tickets = np.clip(_poisson_from_uniform(ticket_uniform, ticket_rate), 0, 100).astype(np.int64)

    session_median = np.select([internet == "fiber", internet == "dsl"], [38.0, 30.0], 12.0)
    session_median = session_median * (1 - 0.2 * min(cov, 2))
    sessions = np.round(np.clip(session_median * np.exp(session_draw), 0.0, 1440.0), 1)
    sessions = np.where(u_session_missing < 0.08, np.nan, sessions)

    start = np.datetime64(f"{year:04d}-{mon:02d}-01T00:00:00", "us")
    event_time = start + (seconds * 1_000_000).astype("timedelta64[us]")
    customer_id = np.array([f"C{year:04d}{mon:02d}-{i:06d}" for i in id_numbers], dtype=object)

    frame = pd.DataFrame(
        {
            "customer_id": customer_id,
            "event_time": event_time,
            "tenure_months": tenure,
            "monthly_charges": charges,
            "total_charges": total,
            "support_tickets": tickets,
            "avg_session_minutes": sessions,
            "num_products": num_products,
            "senior_citizen": senior,
            "contract": contract,
            "payment_method": payment,
            "internet_service": internet,
            "region": region,
        }
    )
    log_odds = churn_log_odds(frame, concept_drift) + latent
    frame["churned"] = (u_label < 1.0 / (1.0 + np.exp(-log_odds))).astype(np.int64)
    frame = frame.sort_values(["event_time", "customer_id"], kind="mergesort", ignore_index=True)
    return _with_schema_dtypes(frame)


def _poisson_from_uniform(u: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Poisson quantiles of shared uniforms (so a changed rate moves counts monotonically, draw by draw).

    The smallest k with CDF(k) >= u, by summing the probability mass; rates here are small, so few terms.
    """
    rate = np.broadcast_to(np.asarray(rate, dtype=float), u.shape)
    pmf = np.exp(-rate)
    cdf = pmf.copy()
    k = np.zeros(u.shape, dtype=np.int64)
    for term in range(1, 200):
        below = u > cdf
        if not below.any():
            break
        k += below
        pmf = pmf * rate / term
        cdf = cdf + pmf
    return k


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
