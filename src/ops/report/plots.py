"""The report's PNG images: base vs PR curves, confusion matrices and feature importance.

Drawn with matplotlib's Figure API, without pyplot: no global state, no GUI backend, the Agg canvas renders
the PNG. matplotlib is imported when the first figure is made, so importing the report (as the retrain job
does) stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlcore.errors import PipelineError
from mlcore.io import atomic_write
from ops.report.outputs import CONFUSION, FEATURE_IMPORTANCE, PRECISION_RECALL, ROC, Outputs


def write_images(base: Outputs, pr: Outputs, out: Path) -> dict[str, Path]:
    """Each image both sides have the data for (the PR's Optuna history copied as it is), by report key."""
    made = {
        "roc": plot_curves(base, pr, "roc", ROC, "fpr", "tpr", "ROC curve", out / "roc.png"),
        "precision_recall": plot_curves(
            base,
            pr,
            "precision_recall",
            PRECISION_RECALL,
            "recall",
            "precision",
            "Precision-recall curve",
            out / "precision_recall.png",
        ),
        "confusion": plot_confusion(base, pr, out / "confusion.png"),
        "feature_importance": plot_feature_importance(base, pr, out / "feature_importance.png"),
    }
    images = {key: path for key, path in made.items() if path is not None}
    if pr.optuna_history_png is not None:
        images["optuna_history"] = atomic_write(
            out / "optimization_history.png", lambda tmp: tmp.write_bytes(pr.optuna_history_png)
        )
    return images


def _blank_figure(width: float, height: float):
    from matplotlib.figure import Figure  # here, not at the top: see the module docstring

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _figure(width: float = 5.5, height: float = 4.2):
    fig = _blank_figure(width, height)
    return fig, fig.subplots()


def _save(fig, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))


def _xy(
    points: list[dict[str, Any]] | None, x: str, y: str, path: str, label: str
) -> tuple[list, list] | None:
    if not points:
        return None
    try:
        return [float(p[x]) for p in points], [float(p[y]) for p in points]
    except (KeyError, TypeError, ValueError) as exc:
        raise PipelineError(f"{path} ({label}): every point needs numeric '{x}' and '{y}'") from exc


def plot_curves(
    base: Outputs, pr: Outputs, attr: str, path: str, x: str, y: str, title: str, out: Path
) -> Path | None:
    curves = [(side, _xy(getattr(side, attr), x, y, path, side.label)) for side in (base, pr)]
    if all(points is None for _, points in curves):
        return None
    fig, ax = _figure()
    styles = {base.label: {"color": "#7f7f7f", "linestyle": "--"}, pr.label: {"color": "#1f77b4"}}
    for side, points in curves:
        if points is not None:
            ax.plot(*points, label=side.label, linewidth=2, **styles[side.label])
    if attr == "roc":
        ax.plot([0, 1], [0, 1], color="#cccccc", linewidth=1, label="chance")
    ax.set(xlabel=x, ylabel=y, title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if attr == "roc" else "lower left")
    return _save(fig, out)


def confusion_counts(
    rows: list[dict[str, Any]] | None, label: str
) -> tuple[list[str], list[list[int]]] | None:
    if not rows:
        return None
    try:
        pairs = [(str(row["actual"]), str(row["predicted"])) for row in rows]
    except (KeyError, TypeError) as exc:
        raise PipelineError(f"{CONFUSION} ({label}): every row needs 'actual' and 'predicted'") from exc
    classes = sorted({c for pair in pairs for c in pair})
    index = {c: i for i, c in enumerate(classes)}
    counts = [[0] * len(classes) for _ in classes]
    for actual, predicted in pairs:
        counts[index[actual]][index[predicted]] += 1
    return classes, counts


def plot_confusion(base: Outputs, pr: Outputs, out: Path) -> Path | None:
    sides = [(side, confusion_counts(side.confusion, side.label)) for side in (base, pr)]
    sides = [(side, counts) for side, counts in sides if counts is not None]
    if not sides:
        return None
    fig = _blank_figure(4.2 * len(sides), 3.8)
    axes = fig.subplots(1, len(sides), squeeze=False)[0]
    for ax, (side, (classes, counts)) in zip(axes, sides, strict=True):
        peak = max(max(row) for row in counts) or 1
        ax.imshow(counts, cmap="Blues", vmin=0, vmax=peak)
        for i, row in enumerate(counts):
            for j, count in enumerate(row):
                ax.text(
                    j,
                    i,
                    f"{count:,}",
                    ha="center",
                    va="center",
                    color="white" if count > peak / 2 else "black",
                )
        ax.set(
            xticks=range(len(classes)),
            yticks=range(len(classes)),
            xticklabels=classes,
            yticklabels=classes,
            xlabel="predicted",
            ylabel="actual",
            title=side.label,
        )
    return _save(fig, out)


def plot_feature_importance(base: Outputs, pr: Outputs, out: Path, top: int = 15) -> Path | None:
    def as_dict(side: Outputs) -> dict[str, float] | None:
        if not side.feature_importance:
            return None
        try:
            return {str(r["feature"]): float(r["importance"]) for r in side.feature_importance}
        except (KeyError, TypeError, ValueError) as exc:
            raise PipelineError(
                f"{FEATURE_IMPORTANCE} ({side.label}): rows need 'feature' and numeric 'importance'"
            ) from exc

    old, new = as_dict(base), as_dict(pr)
    if new is None and old is None:
        return None
    ranking = new if new is not None else old
    features = sorted(ranking, key=lambda name: ranking[name], reverse=True)[:top][::-1]
    fig, ax = _figure(6.5, 0.35 * len(features) + 1.5)
    positions = list(range(len(features)))
    height = 0.4 if old is not None and new is not None else 0.8
    if old is not None:
        shift = height / 2 if new is not None else 0
        ax.barh(
            [p - shift for p in positions],
            [old.get(f, 0.0) for f in features],
            height,
            color="#bbbbbb",
            label=base.label,
        )
    if new is not None:
        shift = height / 2 if old is not None else 0
        ax.barh(
            [p + shift for p in positions],
            [new.get(f, 0.0) for f in features],
            height,
            color="#1f77b4",
            label=pr.label,
        )
    ax.set(yticks=positions, yticklabels=features, xlabel="importance", title="Feature importance")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, out)
