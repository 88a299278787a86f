"""mlcore.cbpe against cases whose answer is known: exact arithmetic, and large samples whose labels are drawn
from the probabilities themselves (so the realised metrics are what a calibrated estimate must approach)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from mlcore.cbpe import calibrate, calibration_error, expected_metrics, expected_roc_auc, fit_calibration


def drawn(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 3, n)
    return p, (rng.random(n) < p).astype(int)


def realised(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = scores >= threshold
    return {
        "roc_auc": roc_auc_score(y, scores),
        "f1": f1_score(y, predicted),
        "precision": precision_score(y, predicted),
        "recall": recall_score(y, predicted),
        "accuracy": accuracy_score(y, predicted),
    }


def test_the_expected_confusion_matrix_by_hand() -> None:
    got = expected_metrics(np.array([0.9, 0.8, 0.3, 0.1]), 0.5, None)
    tp, fp, fn, tn = 1.7, 0.3, 0.4, 1.6
    assert got["accuracy"] == pytest.approx((tp + tn) / 4)
    assert got["precision"] == pytest.approx(tp / (tp + fp))
    assert got["recall"] == pytest.approx(tp / (tp + fn))
    assert got["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert got["positive_rate"] == pytest.approx(0.525)


def test_roc_auc_of_ties_and_of_one_class() -> None:
    assert expected_roc_auc(np.full(10, 0.4), np.full(10, 0.4)) == pytest.approx(0.5)
    assert np.isnan(expected_roc_auc(np.array([0.2, 0.3]), np.zeros(2)))  # no positive expected
    assert expected_metrics(np.array([]), 0.5, None) == {}


@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_calibrated_probabilities_estimate_what_their_labels_realise(threshold: float) -> None:
    p, y = drawn(200_000, 1)
    estimate, truth = expected_metrics(p, threshold, None), realised(y, p, threshold)
    for metric, value in truth.items():
        assert estimate[metric] == pytest.approx(value, abs=0.006), metric


def test_a_miscalibrated_model_is_estimated_through_its_isotonic_map() -> None:
    p, y = drawn(100_000, 2)
    scores = p**2  # ranks like p, but far too low
    calibration = fit_calibration(y[:50_000], scores[:50_000])  # the test window, at train time
    assert calibration["ece_raw"] > 0.15 and calibration["ece_calibrated"] < 0.01
    assert len(calibration["x"]) <= 64 and calibration["rows"] == 50_000
    live, truth = scores[50_000:], realised(y[50_000:], scores[50_000:], 0.3)
    mapped = expected_metrics(live, 0.3, calibration)
    raw = expected_metrics(live, 0.3, None)
    for metric in ("roc_auc", "f1", "accuracy", "precision"):
        assert mapped[metric] == pytest.approx(truth[metric], abs=0.01), metric
    assert abs(raw["precision"] - truth["precision"]) > 0.15  # what calibration buys
    assert calibration_error(y[50_000:], calibrate(live, calibration)) < 0.01
