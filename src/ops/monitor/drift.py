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

from ops.monitor.counts import CategoryCounts, NumericCounts, ks_from_counts

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
    counts = NumericCounts(reference).add(pd.to_numeric(live, errors="coerce").to_numpy(dtype=float))
    return numeric_result(name, counts, psi_threshold, alpha, kind)


def numeric_result(
    name: str, counts: NumericCounts, psi_threshold: float, alpha: float, kind: str = "numeric"
) -> DriftResult:
    """`numeric_drift` from a window's counts (counts.py)."""
    reference = counts.reference
    null_live = counts.nulls / counts.n if counts.n else 0.0
    null_ref = float(reference.get("null_fraction") or 0.0)
    if len(counts.edges) >= 3:
        ref_fractions = np.asarray(reference["bin_fractions"], dtype=float)
    else:
        # A (nearly) constant feature such as a 0/1 flag: its quantile bins collapse to one, so compare the
        # shares of its distinct reference values instead (anything else counts as the last value's bin).
        sample, levels = counts.sample, counts.levels
        ref_fractions = np.array([np.mean(sample == v) for v in levels]) if len(levels) else np.array([1.0])
    live_fractions = counts.bins / max(1, counts.present)
    value = psi(_with_missing_bin(ref_fractions, null_ref), _with_missing_bin(live_fractions, null_live))
    statistic, p_value = ks_from_counts(counts)
    return DriftResult(
        name,
        kind,
        "ks",
        value,
        statistic,
        p_value,
        counts.n,
        null_ref,
        null_live,
        bool(value >= psi_threshold and p_value < alpha),
    )


def categorical_drift(
    name: str, reference: dict[str, Any], live: pd.Series, psi_threshold: float, alpha: float
) -> DriftResult:
    """PSI over the reference categories (+ unseen + missing) and a chi-square goodness-of-fit test."""
    return categorical_result(
        name, reference, CategoryCounts().add(live.astype("string")), psi_threshold, alpha
    )


def categorical_result(
    name: str, reference: dict[str, Any], counts: CategoryCounts, psi_threshold: float, alpha: float
) -> DriftResult:
    """`categorical_drift` from a window's counts (counts.py)."""
    from scipy.stats import chisquare

    frequencies: dict[str, float] = reference.get("frequencies") or {}
    null_ref = float(reference.get("null_fraction") or 0.0)
    categories = list(frequencies)
    null_live = counts.nulls / counts.n if counts.n else 0.0
    present = counts.n - counts.nulls
    known = [counts.values.get(c, 0) for c in categories]
    observed = np.array([*known, present - sum(known)], dtype=float)  # the last: values training never had
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
        counts.n,
        null_ref,
        null_live,
        bool(value >= psi_threshold and p_value < alpha),
    )


def feature_drift(
    reference: dict[str, Any],
    numeric: dict[str, NumericCounts],
    categorical: dict[str, CategoryCounts],
    psi_threshold: float,
    alpha: float,
) -> list[DriftResult]:
    """One result per feature of a window's counts, in schema order (numeric first, then categorical)."""
    out = [numeric_result(n, counts, psi_threshold, alpha) for n, counts in numeric.items()]
    out += [
        categorical_result(n, reference["categorical"][n], counts, psi_threshold, alpha)
        for n, counts in categorical.items()
    ]
    return out


def prediction_drift(
    reference: dict[str, Any], probabilities: pd.Series, psi_threshold: float, alpha: float
) -> DriftResult:
    """The distribution of predicted probabilities, live vs the training data's (same measures as numeric)."""
    return numeric_drift(
        "prediction", reference["prediction"], probabilities, psi_threshold, alpha, kind="prediction"
    )
