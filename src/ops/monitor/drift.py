"""Data and prediction drift: live values compared with the training reference saved in model/metadata.json.

Two measures per feature, because each misses what the other sees:
- PSI (population stability index) over the reference's quantile bins plus a "missing" bin: how much the
  distribution moved. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large.
- A statistical test (scipy): two-sample Kolmogorov-Smirnov against the reference sample for numeric features,
  chi-square goodness of fit against the reference frequencies for categorical ones: whether the move is more
  than sampling noise.
A feature counts as drifted only when the move is both material (PSI >= threshold) and significant
(p-value < alpha): large samples make tiny moves significant, and small samples make PSI noisy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

# Fractions are floored at EPS before the logarithm: an empty bin must not make PSI infinite.
EPS = 1e-4


@dataclass(frozen=True)
class DriftResult:
    name: str
    kind: str  # numeric | categorical | prediction
    test: str  # ks | chi2
    psi: float
    statistic: float
    p_value: float
    n_live: int
    null_fraction_reference: float
    null_fraction_live: float
    drifted: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index between two vectors of bin fractions (each summing to 1)."""
    e = np.clip(np.asarray(expected, dtype=float), EPS, None)
    a = np.clip(np.asarray(actual, dtype=float), EPS, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def _with_missing_bin(fractions: np.ndarray, null_fraction: float) -> np.ndarray:
    return np.append(np.asarray(fractions, dtype=float) * (1.0 - null_fraction), null_fraction)


def numeric_drift(
    name: str,
    reference: dict[str, Any],
    live: pd.Series,
    psi_threshold: float,
    alpha: float,
    kind: str = "numeric",
) -> DriftResult:
    """PSI over the reference bins (+ missing) and a KS test of the present values vs the reference sample."""
    from scipy.stats import ks_2samp

    values = pd.to_numeric(live, errors="coerce")
    present = values.dropna().to_numpy(dtype=float)
    null_live = float(values.isna().mean()) if len(values) else 0.0
    null_ref = float(reference.get("null_fraction") or 0.0)
    sample = np.asarray(reference.get("sample") or [], dtype=float)
    edges = np.asarray(reference.get("bin_edges") or [], dtype=float)
    if len(edges) >= 3:
        ref_fractions = np.asarray(reference["bin_fractions"], dtype=float)
        live_counts = np.histogram(np.clip(present, edges[0], edges[-1]), bins=edges)[0]
    else:
        # A (nearly) constant feature such as a 0/1 flag: its quantile bins collapse to one, so compare the
        # shares of its distinct reference values instead (anything else counts as the last value's bin).
        levels = np.unique(sample)
        ref_fractions = np.array([np.mean(sample == v) for v in levels]) if len(levels) else np.array([1.0])
        live_counts = (
            np.array([np.sum(present == v) for v in levels[:-1]] + [np.sum(~np.isin(present, levels[:-1]))])
            if len(levels)
            else np.array([0])
        )
    live_fractions = live_counts / max(1, len(present))
    value = psi(_with_missing_bin(ref_fractions, null_ref), _with_missing_bin(live_fractions, null_live))
    if len(present) and len(sample):
        result = ks_2samp(sample, present)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    else:
        statistic, p_value = float("nan"), float("nan")
    return DriftResult(
        name,
        kind,
        "ks",
        value,
        statistic,
        p_value,
        len(values),
        null_ref,
        null_live,
        bool(value >= psi_threshold and p_value < alpha),
    )


def categorical_drift(
    name: str, reference: dict[str, Any], live: pd.Series, psi_threshold: float, alpha: float
) -> DriftResult:
    """PSI over the reference categories (+ unseen + missing) and a chi-square goodness-of-fit test."""
    from scipy.stats import chisquare

    frequencies: dict[str, float] = reference.get("frequencies") or {}
    null_ref = float(reference.get("null_fraction") or 0.0)
    categories = list(frequencies)
    text = live.astype("string")
    present = text.dropna()
    null_live = float(text.isna().mean()) if len(text) else 0.0
    counts = present.value_counts()
    observed = np.array(
        [counts.get(c, 0) for c in categories]
        + [int(len(present) - counts.reindex(categories).fillna(0).sum())],
        dtype=float,
    )  # the last bin: values the training data never had
    ref_fractions = np.array([frequencies[c] for c in categories] + [0.0])
    live_fractions = observed / max(1.0, observed.sum())
    value = psi(_with_missing_bin(ref_fractions, null_ref), _with_missing_bin(live_fractions, null_live))
    if observed.sum() > 0:
        expected = np.clip(ref_fractions, EPS, None)
        expected = expected / expected.sum() * observed.sum()
        result = chisquare(observed, expected)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    else:
        statistic, p_value = float("nan"), float("nan")
    return DriftResult(
        name,
        "categorical",
        "chi2",
        value,
        statistic,
        p_value,
        len(text),
        null_ref,
        null_live,
        bool(value >= psi_threshold and p_value < alpha),
    )


def feature_drift(
    reference: dict[str, Any],
    live: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    psi_threshold: float,
    alpha: float,
) -> list[DriftResult]:
    """One result per feature, in schema order (numeric first, then categorical)."""
    out = [numeric_drift(n, reference["numeric"][n], live[n], psi_threshold, alpha) for n in numeric]
    out += [
        categorical_drift(n, reference["categorical"][n], live[n], psi_threshold, alpha) for n in categorical
    ]
    return out


def prediction_drift(
    reference: dict[str, Any], probabilities: pd.Series, psi_threshold: float, alpha: float
) -> DriftResult:
    """The distribution of predicted probabilities, live vs the training data's (same measures as numeric)."""
    return numeric_drift(
        "prediction", reference["prediction"], probabilities, psi_threshold, alpha, kind="prediction"
    )
