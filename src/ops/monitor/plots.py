"""The report's PNGs: live performance over time, and reference vs live distributions of the most drifted
features and of the predicted probabilities."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mlcore.io import atomic_write
from ops.monitor.drift import DriftResult
from ops.monitor.window import WindowStats


def _figure(width: float, height: float) -> Figure:
    # Figure without pyplot: no global state, no GUI backend to select, the Agg canvas renders the PNG.
    return Figure(figsize=(width, height))


def _save(fig: Figure, path: Path, dpi: int) -> None:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def plot_performance(verdict: dict[str, Any], path: Path) -> bool:
    points = verdict["performance"].get("over_time") or []
    if not points:
        return False
    times = pd.to_datetime([p["start"] for p in points], format="ISO8601")  # some with microseconds, some not
    fig = _figure(8, 3.8)
    ax = fig.subplots()
    for i, (metric, floor) in enumerate(verdict["performance"]["floors"].items()):
        color = f"C{i}"
        ax.plot(times, [p[metric] for p in points], marker="o", color=color, label=f"live {metric}")
        ax.axhline(floor, color=color, linestyle="--", linewidth=1, label=f"{metric} floor {floor}")
        trained = verdict["performance"]["training"].get(metric)
        if trained is not None:
            ax.axhline(trained, color=color, linestyle=":", linewidth=1, label=f"{metric} at training")
    ax.set_ylim(0, 1)
    ax.set_title(f"Live performance over time (model {verdict['model_version']})")
    ax.set_ylabel("metric on labelled predictions")
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    fig.autofmt_xdate()
    _save(fig, path, dpi=110)
    return True


def _distributions(result: DriftResult, stats: WindowStats) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bin labels and reference/live fractions for one feature's panel (every row of the window)."""
    reference = stats.reference
    if result.kind == "categorical":
        freq = reference["categorical"][result.name]["frequencies"]
        labels = list(freq)
        counts = stats.categorical[result.name].values
        total = max(1, sum(counts.values()))
        return (
            labels,
            np.array([freq[c] for c in labels]),
            np.array([counts.get(c, 0) / total for c in labels]),
        )
    live = stats.prediction if result.kind == "prediction" else stats.numeric[result.name]
    edges = live.plot_edges
    if len(live.edges) < 3:
        ref_fr = np.histogram(live.sample, bins=edges)[0] / max(1, len(live.sample))
    else:
        ref_fr = np.asarray(live.reference["bin_fractions"], dtype=float)
    labels = [f"{lo:.3g}-{hi:.3g}" for lo, hi in itertools.pairwise(edges)]
    return labels, ref_fr, live.plot / max(1, live.present)


def plot_drift(
    verdict: dict[str, Any], results: list[DriftResult], stats: WindowStats, path: Path, max_panels: int = 6
) -> bool:
    """Reference vs live: the drifted features (else the most moved ones) and the predicted probabilities."""
    if not results:
        return False
    ranked = sorted(results, key=lambda r: (not r.drifted, -r.psi))[: max_panels - 1]
    panels = [*ranked, DriftResult(**verdict["drift"]["prediction"])]
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig = _figure(12, 3.3 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, result in zip(axes.flat, panels, strict=False):
        labels, ref_fr, live_fr = _distributions(result, stats)
        x = np.arange(len(labels))
        ax.bar(x - 0.2, ref_fr, width=0.4, label="reference (training)", color="#9aa5b1")
        ax.bar(x + 0.2, live_fr, width=0.4, label="live", color="#d9534f" if result.drifted else "#337ab7")
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
        flag = "DRIFTED" if result.drifted else "stable"
        ax.set_title(
            f"{result.name}: PSI {result.psi:.2f}, {result.test} p={result.p_value:.1g} ({flag})", fontsize=9
        )
        ax.set_ylabel("share", fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"Reference vs live distributions (model {verdict['model_version']})")
    _save(fig, path, dpi=100)
    return True
