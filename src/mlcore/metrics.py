"""Classification metrics shared by tune, evaluate, retrain and monitoring: one definition everywhere."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

# Metrics where a larger value is better; log_loss and brier are smaller-is-better.
HIGHER_IS_BETTER = {
    "roc_auc": True,
    "pr_auc": True,
    "f1": True,
    "precision": True,
    "recall": True,
    "accuracy": True,
    "log_loss": False,
    "brier": False,
}


def classification_metrics(y_true, proba, threshold: float) -> dict[str, float]:
    """ROC AUC, PR AUC, F1, precision, recall, accuracy, log loss and Brier score for binary labels."""
    y_true = np.asarray(y_true).astype(int)
    proba = np.clip(np.asarray(proba, dtype=float), 1e-7, 1 - 1e-7)
    predicted = (proba >= threshold).astype(int)
    both_classes = len(np.unique(y_true)) == 2
    return {
        "roc_auc": float(skm.roc_auc_score(y_true, proba)) if both_classes else float("nan"),
        "pr_auc": float(skm.average_precision_score(y_true, proba)) if both_classes else float("nan"),
        "f1": float(skm.f1_score(y_true, predicted, zero_division=0)),
        "precision": float(skm.precision_score(y_true, predicted, zero_division=0)),
        "recall": float(skm.recall_score(y_true, predicted, zero_division=0)),
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "log_loss": float(skm.log_loss(y_true, proba, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y_true, proba)),
    }


def score(metric: str, y_true, proba, threshold: float = 0.5) -> float:
    """One metric, oriented so that larger is better (losses are negated) — what a search maximises."""
    value = classification_metrics(y_true, proba, threshold)[metric]
    return value if HIGHER_IS_BETTER[metric] else -value
