"""Performance estimated before labels arrive: confidence-based performance estimation (CBPE).

The idea (NannyML's CBPE): if the predicted probabilities are calibrated,
a prediction of p is a positive with probability p, so the confusion matrix of a window is expected to be

    TP = sum(p_i for predicted 1)   FP = sum(1 - p_i for predicted 1)
    FN = sum(p_i for predicted 0)   TN = sum(1 - p_i for predicted 0)

and every metric of that matrix follows; ROC AUC follows from the expected true- and false-positive rates at each
threshold (TPR(t) = sum of p_j >= t over sum of p, FPR(t) likewise with 1 - p). It holds under two assumptions
the monitoring report shows beside the estimate: the probabilities are calibrated (checked on the held-out test
window when the model is trained: `fit_calibration` records an isotonic map and the expected calibration error
before and after it), and the relation between inputs and label has not changed (concept drift is invisible to
it; covariate drift is what it accounts for, as long as inputs stay inside the ranges the model saw).

Pure functions on numpy arrays: `fit_calibration` (at train time, on the test window), `calibrate` (apply the
recorded map), `expected_metrics` (the estimate) and `calibration_error`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_KNOTS = 64  # the isotonic map as at most this many (x, y) knots: a few KB of metadata
ECE_BINS = 10


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the count-weighted mean |observed positive rate - mean p| over equal-width bins."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(p) == 0:
        return float("nan")
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / len(p))


def fit_calibration(y: np.ndarray, p: np.ndarray, max_knots: int = MAX_KNOTS) -> dict[str, Any]:
    """An isotonic map from predicted to observed probability, fitted on labelled held-out predictions, as knots
    for `calibrate`; with the calibration error before and after (the assumption CBPE rests on; "after" is
    measured on the rows the map was fitted on, so it is optimistic)."""
    from sklearn.isotonic import IsotonicRegression

    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    x_knots, y_knots = np.asarray(iso.X_thresholds_, dtype=float), np.asarray(iso.y_thresholds_, dtype=float)
    if len(x_knots) > max_knots:  # keep the ends and evenly spaced knots between them
        keep = np.unique(np.linspace(0, len(x_knots) - 1, max_knots).round().astype(int))
        x_knots, y_knots = x_knots[keep], y_knots[keep]
    calibration = {"x": [float(v) for v in x_knots], "y": [float(v) for v in y_knots], "rows": len(p)}
    calibration["ece_raw"] = calibration_error(y, p)
    calibration["ece_calibrated"] = calibration_error(y, calibrate(p, calibration))
    return calibration


def calibrate(p: np.ndarray, calibration: dict[str, Any] | None) -> np.ndarray:
    """`p` through the recorded isotonic map (piecewise linear between knots, clipped at the ends)."""
    p = np.asarray(p, dtype=float)
    if not calibration or len(calibration.get("x", [])) < 2:
        return p
    return np.interp(p, calibration["x"], calibration["y"])


def expected_metrics(
    scores: np.ndarray, threshold: float, calibration: dict[str, Any] | None
) -> dict[str, float]:
    """The metrics a window is expected to score: predictions as the service made them (`scores` >= threshold),
    each a positive with its calibrated probability (`calibrate(scores, calibration)`)."""
    scores = np.asarray(scores, dtype=float)
    p = np.clip(calibrate(scores, calibration), 0.0, 1.0)
    n = len(p)
    if n == 0:
        return {}
    predicted = scores >= threshold
    tp, fp = float(p[predicted].sum()), float((1 - p[predicted]).sum())
    fn, tn = float(p[~predicted].sum()), float((1 - p[~predicted]).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / n,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": expected_roc_auc(scores, p),
        "positive_rate": float(p.mean()),
    }


def expected_roc_auc(scores: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC of ranking by `scores` when each row is a positive with probability `p`: the expected TPR and FPR
    at every distinct score (trapezoids; tied scores share a step)."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    scores, p = np.asarray(scores, dtype=float)[order], np.asarray(p, dtype=float)[order]
    positives, negatives = p.sum(), (1 - p).sum()
    if positives <= 0 or negatives <= 0:
        return float("nan")
    _, starts = np.unique(-scores, return_index=True)  # distinct scores, high to low
    tp = np.cumsum(np.add.reduceat(p, starts))
    fp = np.cumsum(np.add.reduceat(1 - p, starts))
    tpr = np.concatenate([[0.0], tp / positives])
    fpr = np.concatenate([[0.0], fp / negatives])
    return float(np.trapezoid(tpr, fpr))
