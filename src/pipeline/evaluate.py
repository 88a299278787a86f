"""Stage `evaluate`: metrics and plots on the held-out test window, and the quality gate.

The gate compares test metrics with the absolute floors in params.yaml `evaluate.gate`. Its verdict is written to
the gate file; a failed gate makes this stage (and so `dvc repro`) exit non-zero naming each rule broken.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance

from mlcore.artifact import load_model
from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import atomic_write, write_json
from mlcore.metrics import classification_metrics
from mlcore.rules import floors, known_metrics, verdict
from pipeline.config import Params, load_params
from pipeline.modeling import features_frame, limit_threads

MAX_CURVE_POINTS = 200


def _thin(points: list[dict[str, float]]) -> list[dict[str, float]]:
    """Keep curves small enough to commit and diff: at most MAX_CURVE_POINTS, always the end points."""
    if len(points) <= MAX_CURVE_POINTS:
        return points
    idx = np.unique(np.linspace(0, len(points) - 1, MAX_CURVE_POINTS).round().astype(int))
    return [points[i] for i in idx]


def curves(y_true: np.ndarray, proba: np.ndarray, threshold: float, bins: int) -> dict[str, list[dict]]:
    fpr, tpr, thr = skm.roc_curve(y_true, proba)
    precision, recall, _ = skm.precision_recall_curve(y_true, proba)
    frac_pos, mean_pred = calibration_curve(y_true, proba, n_bins=bins, strategy="quantile")
    predicted = (proba >= threshold).astype(int)
    r4 = lambda v: round(float(v), 4)  # noqa: E731
    return {
        "roc": _thin(
            [
                {"fpr": r4(f), "tpr": r4(t), "threshold": r4(min(h, 1.0))}
                for f, t, h in zip(fpr, tpr, thr, strict=True)
            ]
        ),
        "precision_recall": _thin(
            [
                {"recall": r4(r), "precision": r4(p)}
                for r, p in zip(recall[::-1], precision[::-1], strict=True)
            ]
        ),
        "calibration": [
            {"mean_predicted": r4(m), "fraction_positive": r4(f)}
            for m, f in zip(mean_pred, frac_pos, strict=True)
        ],
        "confusion": [
            {"actual": int(a), "predicted": int(p)} for a, p in zip(y_true, predicted, strict=True)
        ],
    }


def feature_importance(model, x: pd.DataFrame, y: np.ndarray, repeats: int, seed: int) -> list[dict]:
    """Permutation importance on the test window: the drop in ROC AUC when a feature is shuffled."""
    result = permutation_importance(model, x, y, scoring="roc_auc", n_repeats=repeats, random_state=seed)
    order = np.argsort(-result.importances_mean)
    return [
        {"feature": str(x.columns[i]), "importance": round(float(result.importances_mean[i]), 5)}
        for i in order
    ]


def apply_gate(metrics: dict[str, float], gate: dict[str, float]) -> dict[str, Any]:
    """params.yaml evaluate.gate's floors on the test metrics (mlcore.rules); what metrics/gate.json holds."""
    known_metrics(gate, "params.yaml: evaluate.gate")
    return verdict(floors(metrics, gate, "evaluate.gate")).to_dict()


def plot_images(data: dict[str, list[dict]], importance: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, name: str) -> None:
        fig.tight_layout()
        atomic_write(out / f"{name}.png", lambda tmp: fig.savefig(tmp, format="png"))
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([p["fpr"] for p in data["roc"]], [p["tpr"] for p in data["roc"]], label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (test window)")
    ax.legend(loc="lower right")
    save(fig, "roc")

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot(
        [p["recall"] for p in data["precision_recall"]], [p["precision"] for p in data["precision_recall"]]
    )
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve (test window)", ylim=(0, 1.02))
    save(fig, "precision_recall")

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.plot(
        [p["mean_predicted"] for p in data["calibration"]],
        [p["fraction_positive"] for p in data["calibration"]],
        "o-",
        label="model",
    )
    ax.set(xlabel="mean predicted probability", ylabel="fraction of positives", title="Calibration")
    ax.legend(loc="upper left")
    save(fig, "calibration")

    pairs = pd.DataFrame(data["confusion"])
    matrix = pd.crosstab(pairs["actual"], pairs["predicted"]).reindex(
        index=[0, 1], columns=[0, 1], fill_value=0
    )
    fig, ax = plt.subplots(figsize=(4.5, 4), dpi=100)
    ax.imshow(matrix.to_numpy(), cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix.to_numpy()):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=14)
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual", title="Confusion matrix")
    save(fig, "confusion")

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    names = [p["feature"] for p in importance][::-1]
    ax.barh(names, [p["importance"] for p in importance][::-1], color="#1f77b4")
    ax.set(xlabel="drop in ROC AUC when shuffled", title="Permutation feature importance")
    save(fig, "feature_importance")


def run_evaluate(
    params: Params, model_dir: Path, prepared: Path, metrics_path: Path, plots_dir: Path, gate_path: Path
) -> dict[str, Any]:
    model, _ = load_model(model_dir)
    test = pd.read_parquet(prepared / "test.parquet")
    schema, ev = params.schema, params.evaluate
    x, y = features_frame(test, schema), test[schema.label].to_numpy().astype(int)
    with limit_threads(params.model):
        proba = model.predict_proba(x)[:, 1]
        importance = feature_importance(model, x, y, ev.importance_repeats, ev.seed)
    metrics = classification_metrics(y, proba, ev.threshold)
    metrics.update({"n_test": len(test), "positive_rate": float(y.mean()), "threshold": ev.threshold})
    data = curves(y, proba, ev.threshold, ev.calibration_bins)
    gate = apply_gate(metrics, ev.gate)
    for name, points in {**data, "feature_importance": importance}.items():
        write_json(plots_dir / f"{name}.json", points)
    plot_images(data, importance, plots_dir)
    write_json(metrics_path, metrics)
    write_json(gate_path, gate)
    return {"metrics": metrics, "gate": gate}


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--prepared", required=True, type=Path)
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--plots", required=True, type=Path)
    parser.add_argument("--gate", required=True, type=Path)
    args = parser.parse_args(argv)
    result = run_evaluate(
        load_params(args.params), args.model, args.prepared, args.metrics, args.plots, args.gate
    )
    m = result["metrics"]
    print(
        f"evaluate: test roc_auc {m['roc_auc']:.4f}  pr_auc {m['pr_auc']:.4f}  f1 {m['f1']:.4f}  "
        f"recall {m['recall']:.4f}  ({m['n_test']} rows)"
    )
    gate = result["gate"]
    if not gate["passed"]:
        broken = "; ".join(f"{c['detail']} ({c['param']})" for c in gate["checks"] if not c["passed"])
        raise PipelineError(f"quality gate failed (params.yaml evaluate.gate): {broken}")
    print("evaluate: quality gate passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
