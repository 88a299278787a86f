"""Performance estimated before labels arrive (mlcore.cbpe), with the assumptions it rests on, for the verdict.

`estimate_performance(log, live, metadata)` returns the verdict's `estimated` section:
- `window`: the metrics every prediction of the window is expected to score (CBPE on the calibrated
  probabilities); `unlabelled`: the same on the predictions no label has reached yet (what the realised figures
  cannot say); `labelled`: the same on the labelled ones, beside the realised metrics on exactly those rows, so
  the report shows how far estimate and truth are apart where both exist;
- `assumptions`: the calibration error of the model's probabilities on its test window before and after the
  recorded isotonic map (train time; a model without one is estimated uncalibrated, and says so), and the share of
  live rows with a value outside what training saw (a numeric feature outside the reference range, a category the
  reference never had): where inputs leave the training ranges the calibration is extrapolated.
Estimates inform; they never breach (a floor breach needs labels: `monitor.performance_floors`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlcore.cbpe import expected_metrics
from mlcore.metrics import classification_metrics

METRICS = ("roc_auc", "f1", "precision", "recall", "accuracy")


def outside_training(live: pd.DataFrame, reference: dict[str, Any]) -> dict[str, Any]:
    """Share of rows with any value training never saw, and the features that have them (share per feature)."""
    outside = pd.Series(False, index=live.index)
    per_feature: dict[str, float] = {}
    for name, ref in (reference.get("numeric") or {}).items():
        edges = ref.get("bin_edges") or []
        if name not in live or len(edges) < 2:
            continue
        values = pd.to_numeric(live[name], errors="coerce")
        mask = values.notna() & ((values < edges[0]) | (values > edges[-1]))
        if mask.any():
            per_feature[name] = float(mask.mean())
        outside |= mask
    for name, ref in (reference.get("categorical") or {}).items():
        if name not in live:
            continue
        known = set(ref.get("frequencies") or {})
        mask = live[name].notna() & ~live[name].astype(str).isin(known)
        if mask.any():
            per_feature[name] = float(mask.mean())
        outside |= mask
    return {
        "share": float(outside.mean()) if len(outside) else 0.0,
        "features": dict(sorted(per_feature.items(), key=lambda kv: -kv[1])),
    }


def _pick(metrics: dict[str, float]) -> dict[str, float]:
    return {m: float(metrics[m]) for m in METRICS if m in metrics}


def estimate_performance(log: pd.DataFrame, live: pd.DataFrame, metadata: dict[str, Any]) -> dict[str, Any]:
    threshold = float(metadata["threshold"])
    reference = metadata.get("reference") or {}
    calibration = reference.get("calibration")
    scores = log["probability"].to_numpy(dtype=float)
    has_label = log["label"].notna().to_numpy()
    out: dict[str, Any] = {
        "method": "CBPE (expected confusion matrix of calibrated probabilities; mlcore.cbpe)",
        "window": {"rows": len(scores), **_pick(expected_metrics(scores, threshold, calibration))},
        "unlabelled": {
            "rows": int((~has_label).sum()),
            **_pick(expected_metrics(scores[~has_label], threshold, calibration)),
        },
        "labelled": {"rows": int(has_label.sum())},
        "assumptions": {
            "calibrated": bool(calibration),
            "calibration_error_test_window": None if not calibration else calibration.get("ece_raw"),
            "calibration_error_after_map": None if not calibration else calibration.get("ece_calibrated"),
            "outside_training_ranges": outside_training(live, reference),
        },
    }
    if has_label.any():
        labels = log.loc[has_label, "label"].to_numpy(dtype=int)
        estimated = _pick(expected_metrics(scores[has_label], threshold, calibration))
        realised = (
            _pick(classification_metrics(labels, scores[has_label], threshold))
            if len(np.unique(labels)) > 1
            else {}
        )
        out["labelled"].update(estimated=estimated, realised=realised)
    return out
