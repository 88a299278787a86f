"""Tiny synthetic data that honours the test project's schema (tests/support/params.yaml), for stage unit tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import Params, load_params
from tests.support.paths import TEST_PARAMS


def default_params() -> Params:
    return load_params(TEST_PARAMS)


def make_snapshot(n: int = 600, seed: int = 0, days: int = 360, end: str = "2025-12-31") -> pd.DataFrame:
    """Rows over `days` days up to `end`, churn depending on contract, tickets and tenure."""
    rng = np.random.default_rng(seed)
    end_ts = pd.Timestamp(end)
    offsets = np.sort(rng.uniform(0, days * 86400, n))
    contract = rng.choice(["month-to-month", "one-year", "two-year"], n, p=[0.5, 0.3, 0.2])
    tenure = rng.integers(0, 72, n)
    tickets = rng.poisson(1.5, n)
    logit = -1.5 + 1.5 * (contract == "month-to-month") + 0.5 * tickets - 0.03 * tenure
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
    monthly = rng.uniform(20, 120, n).round(2)
    total = (monthly * np.maximum(tenure, 1)).round(2)
    total[rng.random(n) < 0.05] = np.nan
    session = rng.gamma(2, 20, n).round(1)
    session[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "customer_id": [f"C{seed}-{i:06d}" for i in range(n)],
            "event_time": (end_ts - pd.to_timedelta(days * 86400 - offsets, unit="s")).astype(
                "datetime64[us]"
            ),
            "tenure_months": tenure.astype("int64"),
            "monthly_charges": monthly,
            "total_charges": total,
            "support_tickets": tickets.astype("int64"),
            "avg_session_minutes": session,
            "num_products": rng.integers(1, 6, n).astype("int64"),
            "senior_citizen": (rng.random(n) < 0.15).astype("int64"),
            "contract": contract,
            "payment_method": rng.choice(
                ["bank-transfer", "credit-card", "electronic-check", "mailed-check"], n
            ),
            "internet_service": rng.choice(["dsl", "fiber", "none"], n),
            "region": rng.choice(["east", "north", "south", "west"], n),
            "churned": churned,
        }
    )


def raw_params() -> dict:
    import yaml

    return yaml.safe_load(TEST_PARAMS.read_text())


def params_with(overrides: dict | None = None) -> Params:
    """params.yaml with dotted-key overrides, e.g. {"tune.n_trials": 2}."""
    from pipeline.config import parse_params

    raw = raw_params()
    for dotted, value in (overrides or {}).items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[leaf] = value
    return parse_params(raw)


def write_splits(df: pd.DataFrame, out_dir, params: Params | None = None) -> dict[str, pd.DataFrame]:
    from pipeline.prepare import split_by_time

    params = params or default_params()
    splits = split_by_time(df, params.schema, params.prepare)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in splits.items():
        part.to_parquet(out_dir / f"{name}.parquet", index=False)
    return splits
