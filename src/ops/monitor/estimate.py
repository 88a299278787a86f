"""Performance estimated before labels arrive (mlcore.cbpe), with the assumptions it rests on, for the verdict.

`estimate_performance(stats, metadata)` returns the verdict's `estimated` section, from a window's counts and
samples (window.py):
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

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlcore.cbpe import expected_metrics
from mlcore.metrics import classification_metrics

if TYPE_CHECKING:
    from ops.monitor.window import WindowStats

METRICS = ("roc_auc", "f1", "precision", "recall", "accuracy")


def outside_training_masks(
    numbers: dict[str, np.ndarray], texts: dict[str, pd.Series], reference: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Per feature, which rows of a chunk have a value training never saw: a number outside the reference range,
    a category the reference never had (`numbers` as floats, NaN missing; `texts` as pandas strings)."""
    masks: dict[str, np.ndarray] = {}
    for name, ref in (reference.get("numeric") or {}).items():
        edges = ref.get("bin_edges") or []
        if name in numbers and len(edges) >= 2:
            values = numbers[name]
            masks[name] = ~np.isnan(values) & ((values < edges[0]) | (values > edges[-1]))
    for name, ref in (reference.get("categorical") or {}).items():
        if name in texts:
            known = list(ref.get("frequencies") or {})
            masks[name] = (texts[name].notna() & ~texts[name].isin(known)).to_numpy(dtype=bool)
    return masks


def outside_training(stats: WindowStats) -> dict[str, Any]:
    """Share of rows with any value training never saw, and the features that have them (share per feature)."""
    n = stats.predictions
    per_feature = {name: count / n for name, count in stats.outside.items() if count}
    return {
        "share": stats.outside_rows / n if n else 0.0,
        "features": dict(sorted(per_feature.items(), key=lambda kv: -kv[1])),
    }


def _pick(metrics: dict[str, float]) -> dict[str, float]:
    return {m: float(metrics[m]) for m in METRICS if m in metrics}


def estimate_performance(stats: WindowStats, metadata: dict[str, Any]) -> dict[str, Any]:
    """The verdict's `estimated` section for a window (see the module docstring). Computed on the window's
    uniform samples (`monitor.sample_size`): `sample` says how many rows when that is fewer than all."""
    threshold = float(metadata["threshold"])
    reference = metadata.get("reference") or {}
    calibration = reference.get("calibration")
    sample = stats.scores.frame()
    scores = sample["probability"].to_numpy(dtype=float) if len(sample) else np.empty(0)
    has_label = sample["labelled"].to_numpy(dtype=bool) if len(sample) else np.empty(0, bool)
    out: dict[str, Any] = {
        "method": "CBPE (expected confusion matrix of calibrated probabilities; mlcore.cbpe)",
        "window": {"rows": stats.predictions, **_pick(expected_metrics(scores, threshold, calibration))},
        "unlabelled": {
            "rows": stats.predictions - stats.labelled,
            **_pick(expected_metrics(scores[~has_label], threshold, calibration)),
        },
        "labelled": {"rows": stats.labelled},
        "sample": {"rows": len(scores), "labelled_rows": len(stats.labels.keys)}
        if stats.scores.sampled or stats.labels.sampled
        else None,
        "assumptions": {
            "calibrated": bool(calibration),
            "calibration_error_test_window": None if not calibration else calibration.get("ece_raw"),
            "calibration_error_after_map": None if not calibration else calibration.get("ece_calibrated"),
            "outside_training_ranges": outside_training(stats),
        },
    }
    labelled = stats.labelled_frame()
    if len(labelled):
        labels = labelled["label"].to_numpy(dtype=int)
        probabilities = labelled["probability"].to_numpy(dtype=float)
        estimated = _pick(expected_metrics(probabilities, threshold, calibration))
        realised = (
            _pick(classification_metrics(labels, probabilities, threshold))
            if len(np.unique(labels)) > 1
            else {}
        )
        out["labelled"].update(estimated=estimated, realised=realised)
    return out
