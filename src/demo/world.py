"""The simulated customer world behind the demo data: who the customers are and why they churn.

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

All random draws of a month come first, in a fixed order, and the knobs only transform them, so drifted
customers differ from undrifted ones only by the drift.
"""

from __future__ import annotations

import calendar

import numpy as np
import pandas as pd

CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENT_METHODS = ["bank-transfer", "credit-card", "electronic-check", "mailed-check"]
INTERNET_SERVICES = ["dsl", "fiber", "none"]
REGIONS = ["east", "north", "south", "west"]

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


def simulate_customers(
    rng: np.random.Generator, year: int, month: int, n: int, covariate_drift: float, concept_drift: float
) -> pd.DataFrame:
    """`n` customers observed in the month, in draw order: id, event time, features and `churned`."""
    draws = _draws(rng, n, calendar.monthrange(year, month)[1] * 86400)
    start = np.datetime64(f"{year:04d}-{month:02d}-01T00:00:00", "us")
    frame = pd.DataFrame(
        {
            "customer_id": np.array(
                [f"C{year:04d}{month:02d}-{i:06d}" for i in draws["id_numbers"]], dtype=object
            ),
            "event_time": start + (draws["seconds"] * 1_000_000).astype("timedelta64[us]"),
            **_features(draws, covariate_drift),
        }
    )
    log_odds = churn_log_odds(frame, concept_drift) + draws["latent"]
    frame["churned"] = (draws["label"] < 1.0 / (1.0 + np.exp(-log_odds))).astype(np.int64)
    return frame


def _draws(rng: np.random.Generator, n: int, seconds_in_month: int) -> dict[str, np.ndarray]:
    """Every random draw of the month, in a fixed order (this dict's), so the knobs only transform them."""
    u_contract, u_internet, u_payment, u_region = (rng.random(n) for _ in range(4))
    return {
        "contract": u_contract,
        "internet": u_internet,
        "payment": u_payment,
        "region": u_region,
        "senior": rng.random(n),
        "tenure": rng.standard_gamma(1.4, n),
        "products": rng.poisson(1.1, n),
        "charges_noise": rng.normal(0.0, 9.0, n),
        "total_noise": rng.uniform(0.92, 1.06, n),
        "total_missing": rng.random(n),
        "tickets": rng.random(n),
        "sessions": rng.normal(0.0, 0.55, n),
        "sessions_missing": rng.random(n),
        "latent": rng.normal(0.0, _LATENT_SD, n),
        "label": rng.random(n),
        "seconds": rng.integers(0, seconds_in_month, n),
        "id_numbers": rng.permutation(n),
    }


def _features(draws: dict[str, np.ndarray], cov: float) -> dict[str, np.ndarray]:
    """The customers' features from the month's draws, shifted by `cov` (covariate_drift)."""
    contract = _choice(draws["contract"], *_CONTRACT_SHARES, cov, CONTRACTS)
    internet = _choice(draws["internet"], *_INTERNET_SHARES, cov, INTERNET_SERVICES)
    payment = _choice(draws["payment"], *_PAYMENT_SHARES, cov, PAYMENT_METHODS)
    region = _choice(draws["region"], *_REGION_SHARES, cov, REGIONS)
    senior = (draws["senior"] < 0.16).astype(np.int64)

    mean_tenure = np.select([contract == "month-to-month", contract == "one-year"], [14.0, 32.0], 52.0)
    tenure = np.round(draws["tenure"] / 1.4 * mean_tenure * (1 - 0.25 * min(cov, 2)))
    tenure = np.clip(tenure, 0, 120).astype(np.int64)

    num_products = np.clip(1 + draws["products"] + (internet == "fiber"), 1, 10).astype(np.int64)
    base = np.select([internet == "fiber", internet == "dsl"], [82.0, 52.0], 22.0)
    charges = (base + 9.0 * (num_products - 1) + draws["charges_noise"]) * (1 + 0.15 * cov)
    charges = np.round(np.clip(charges, 5.0, 500.0), 2)

    total = np.round(np.clip(charges * tenure * draws["total_noise"], 0.0, 100000.0), 2)
    total = np.where((tenure == 0) | (draws["total_missing"] < 0.015), np.nan, total)

    ticket_rate = 0.6 + 0.5 * (internet == "fiber") + 0.3 * senior + 0.5 * cov
    tickets = np.clip(_poisson_from_uniform(draws["tickets"], ticket_rate), 0, 100).astype(np.int64)

    session_median = np.select([internet == "fiber", internet == "dsl"], [38.0, 30.0], 12.0)
    session_median = session_median * (1 - 0.2 * min(cov, 2))
    sessions = np.round(np.clip(session_median * np.exp(draws["sessions"]), 0.0, 1440.0), 1)
    sessions = np.where(draws["sessions_missing"] < 0.08, np.nan, sessions)
    return {
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
