"""Drift measures on crafted data: PSI values; `drifted` only when a move is material and significant."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ops.monitor.drift import categorical_drift, numeric_drift, prediction_drift, psi
from pipeline.train import numeric_reference


def test_psi_is_zero_for_identical_distributions_and_matches_the_formula() -> None:
    assert psi([0.25, 0.25, 0.5], [0.25, 0.25, 0.5]) == pytest.approx(0.0)
    expected = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected)


def test_psi_stays_finite_when_a_bin_is_empty() -> None:
    assert math.isfinite(psi([0.5, 0.5], [1.0, 0.0]))


def reference_of(values: np.ndarray) -> dict:
    return numeric_reference(pd.Series(values), sample_size=1000, seed=0)


def test_numeric_feature_from_the_same_distribution_is_stable() -> None:
    rng = np.random.default_rng(0)
    result = numeric_drift(
        "x",
        reference_of(rng.normal(50, 10, 5000)),
        pd.Series(rng.normal(50, 10, 2000)),
        psi_threshold=0.2,
        alpha=0.01,
    )
    assert result.psi < 0.05 and result.p_value > 0.01 and not result.drifted
    assert result.test == "ks" and result.n_live == 2000


def test_shifted_numeric_feature_drifts() -> None:
    rng = np.random.default_rng(1)
    result = numeric_drift(
        "x",
        reference_of(rng.normal(50, 10, 5000)),
        pd.Series(rng.normal(62, 10, 2000)),
        psi_threshold=0.2,
        alpha=0.01,
    )
    assert result.psi > 0.5 and result.p_value < 1e-10 and result.drifted


def test_a_tiny_but_significant_shift_is_not_drift() -> None:
    # A 0.2-sigma move on 50 000 rows is significant against the 1000-row reference sample; PSI: immaterial.
    rng = np.random.default_rng(2)
    result = numeric_drift(
        "x",
        reference_of(rng.normal(0, 1, 5000)),
        pd.Series(rng.normal(0.2, 1, 50000)),
        psi_threshold=0.2,
        alpha=0.01,
    )
    assert result.p_value < 0.01 and result.psi < 0.2 and not result.drifted


def test_a_large_move_on_a_handful_of_rows_is_not_drift() -> None:
    rng = np.random.default_rng(3)
    result = numeric_drift(
        "x",
        reference_of(rng.normal(0, 1, 5000)),
        pd.Series(rng.normal(0.8, 1, 8)),
        psi_threshold=0.2,
        alpha=0.01,
    )
    assert result.psi >= 0.2 and result.p_value >= 0.01 and not result.drifted


def test_more_missing_values_count_as_drift() -> None:
    rng = np.random.default_rng(4)
    live = pd.Series(rng.normal(0, 1, 2000))
    live[live.sample(frac=0.4, random_state=0).index] = np.nan
    result = numeric_drift("x", reference_of(rng.normal(0, 1, 5000)), live, psi_threshold=0.2, alpha=0.01)
    assert result.null_fraction_live == pytest.approx(0.4) and result.psi > 0.2


def test_a_binary_flag_compares_the_share_of_each_value() -> None:
    # Quantile bins of a 0/1 flag collapse into one bin: the shares of 0 and 1 are compared instead.
    rng = np.random.default_rng(5)
    reference = reference_of((rng.random(5000) < 0.16).astype(float))
    assert len(reference["bin_edges"]) == 2
    same = numeric_drift("flag", reference, pd.Series((rng.random(2000) < 0.16).astype(float)), 0.2, 0.01)
    moved = numeric_drift("flag", reference, pd.Series((rng.random(2000) < 0.6).astype(float)), 0.2, 0.01)
    assert not same.drifted and same.psi < 0.02
    assert moved.drifted and moved.psi > 0.5


CATEGORIES = {"frequencies": {"a": 0.5, "b": 0.3, "c": 0.2}, "null_fraction": 0.0}


def test_categorical_feature_with_the_reference_shares_is_stable() -> None:
    rng = np.random.default_rng(6)
    live = pd.Series(rng.choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2]))
    result = categorical_drift("cat", CATEGORIES, live, psi_threshold=0.2, alpha=0.01)
    assert result.test == "chi2" and result.psi < 0.01 and result.p_value > 0.01 and not result.drifted


def test_categorical_shift_and_unseen_values_drift() -> None:
    rng = np.random.default_rng(7)
    shifted = categorical_drift(
        "cat",
        CATEGORIES,
        pd.Series(rng.choice(["a", "b", "c"], 3000, p=[0.15, 0.25, 0.6])),
        psi_threshold=0.2,
        alpha=0.01,
    )
    unseen = categorical_drift(
        "cat", CATEGORIES, pd.Series(rng.choice(["a", "b", "c", "zzz"], 3000)), psi_threshold=0.2, alpha=0.01
    )
    assert shifted.drifted and shifted.psi > 0.5 and shifted.p_value < 1e-10
    assert unseen.drifted


def test_prediction_drift_uses_the_reference_prediction_distribution() -> None:
    rng = np.random.default_rng(8)
    reference = {"prediction": reference_of(rng.beta(2, 5, 5000))}
    stable = prediction_drift(reference, pd.Series(rng.beta(2, 5, 2000)), psi_threshold=0.2, alpha=0.01)
    moved = prediction_drift(reference, pd.Series(rng.beta(5, 2, 2000)), psi_threshold=0.2, alpha=0.01)
    assert stable.kind == "prediction" and not stable.drifted
    assert moved.drifted
