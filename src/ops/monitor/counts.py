"""Mergeable state of a window read in chunks: what drift, traffic and the estimate need, in memory that does not
grow with the window.

- `NumericCounts`: one numeric feature (or the predicted probability) against its training reference: rows,
  missing values, counts over the reference's PSI bins and the plot's bins, and counts of the live values in
  each gap between and at each distinct value of the reference sample - enough for the exact two-sample KS test
  against that sample (`ks_from_counts`), so no live value is kept.
- `CategoryCounts`: one categorical feature: rows, missing values, count per value.
- `Reservoir`: a uniform sample of at most `size` rows, for what needs raw values (metrics on labelled
  predictions, label delays, CBPE): the rows with the smallest keyed hashes of their prediction ids, so the
  sample does not depend on how the window was chunked or ordered, and it is every row while the window holds no
  more than `size`.
Each `add` takes one chunk; adding the chunks of a window one by one gives the state of the whole window.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp computes the exact p-value up to this many values per sample


def plot_edges(reference: dict[str, Any]) -> np.ndarray:
    """The bins a feature's panel shows: the reference's bins, or a 0/1 flag's two values."""
    edges = np.asarray(reference.get("bin_edges") or [], dtype=float)
    if len(edges) < 3 and set(np.unique(reference.get("sample") or [])) <= {0.0, 1.0}:
        return np.array([-0.5, 0.5, 1.5])
    return edges


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    if len(edges) < 2:
        return np.zeros(max(0, len(edges) - 1), dtype=np.int64)
    return np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]


@dataclass
class NumericCounts:
    reference: dict[str, Any]
    n: int = 0
    nulls: int = 0
    bins: np.ndarray = field(init=False)  # live counts over the PSI bins (see drift.numeric_drift)
    plot: np.ndarray = field(init=False)  # live counts over plot_edges
    cells: np.ndarray = field(init=False)  # below, at, between ... at, above the distinct reference values

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.reference.get("bin_edges") or [], dtype=float)
        self.sample = np.sort(np.asarray(self.reference.get("sample") or [], dtype=float))
        self.levels = np.unique(self.sample)
        self.plot_edges = plot_edges(self.reference)
        self.bins = np.zeros(
            len(self.edges) - 1 if len(self.edges) >= 3 else max(1, len(self.levels)), np.int64
        )
        self.plot = np.zeros(max(0, len(self.plot_edges) - 1), np.int64)
        self.cells = np.zeros(2 * len(self.levels) + 1, np.int64)

    def add(self, values: np.ndarray) -> NumericCounts:
        """One chunk of live values (float, NaN for missing)."""
        values = np.asarray(values, dtype=float)
        present = values[~np.isnan(values)]
        self.n += len(values)
        self.nulls += len(values) - len(present)
        if len(self.edges) >= 3:
            self.bins += _histogram(present, self.edges)
        elif len(self.levels):
            # a (nearly) constant feature: its distinct reference values' shares, anything else in the last one
            position = np.searchsorted(self.levels[:-1], present)
            exact = position < len(self.levels) - 1
            exact[exact] = self.levels[position[exact]] == present[exact]
            self.bins += np.bincount(
                np.where(exact, position, len(self.levels) - 1), minlength=len(self.levels)
            )
        self.plot += _histogram(present, self.plot_edges)
        position = np.searchsorted(self.levels, present)
        at = position < len(self.levels)
        at[at] = self.levels[position[at]] == present[at]
        self.cells += np.bincount(2 * position + at, minlength=len(self.cells))
        return self

    @property
    def present(self) -> int:
        return self.n - self.nulls


def ks_from_counts(counts: NumericCounts) -> tuple[float, float]:
    """(statistic, p-value) of scipy's two-sample KS test of the reference sample against the live values the
    counts describe: equal to `ks_2samp(sample, live)`, because both only depend on where each live value falls
    among the reference values."""
    from scipy.stats import kstwo

    n1, n2 = len(counts.sample), counts.present
    if not n1 or not n2:
        return float("nan"), float("nan")
    if max(n1, n2) <= KS_EXACT_MAX_N:
        return _ks_exact(counts)
    ref_cdf = np.searchsorted(counts.sample, _representatives(counts.levels), side="right") / n1
    diff = ref_cdf - np.cumsum(counts.cells) / n2
    d = float(max(np.clip(-diff.min(), 0, 1), diff.max()))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return d, float(np.clip(kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))


def _representatives(levels: np.ndarray) -> np.ndarray:
    """One value per cell, ordered among the reference values as the cell's live values are."""
    below = np.nextafter(levels, -np.inf)
    above = np.nextafter(levels[-1:], np.inf)
    return np.concatenate([np.column_stack([below, levels]).ravel(), above])


def _ks_exact(counts: NumericCounts) -> tuple[float, float]:
    from scipy.stats import ks_2samp

    live = np.repeat(_representatives(counts.levels), counts.cells)
    result = ks_2samp(counts.sample, live)
    return float(result.statistic), float(result.pvalue)


@dataclass
class CategoryCounts:
    n: int = 0
    nulls: int = 0
    values: Counter = field(default_factory=Counter)

    def add(self, text: pd.Series) -> CategoryCounts:
        """One chunk of live values as pandas strings (<NA> for missing)."""
        present = text.dropna()
        self.n += len(text)
        self.nulls += len(text) - len(present)
        self.values.update(present.value_counts().to_dict())
        return self


def hash_key(seed: int) -> str:
    """pandas' row hash takes a 16-character key: the seed, zero-padded."""
    return f"{seed % 10**16:016d}"


@dataclass
class Reservoir:
    size: int
    seed: int
    seen: int = 0
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, ids: np.ndarray, columns: dict[str, np.ndarray]) -> Reservoir:
        """One chunk of rows: their prediction ids and columns (equal lengths)."""
        self.seen += len(ids)
        keys = pd.util.hash_array(np.asarray(ids, dtype=object), hash_key=hash_key(self.seed))
        keys = np.concatenate([self.keys, keys])
        merged = {
            k: np.concatenate([self.columns[k], v]) if k in self.columns else np.asarray(v)
            for k, v in columns.items()
        }
        if len(keys) > self.size:
            keep = np.argpartition(keys, self.size - 1)[: self.size]
            keys, merged = keys[keep], {k: v[keep] for k, v in merged.items()}
        self.keys, self.columns = keys, merged
        return self

    @property
    def sampled(self) -> bool:
        """Whether the reservoir holds fewer rows than it saw."""
        return self.seen > len(self.keys)

    def frame(self, order_by: str | None = None) -> pd.DataFrame:
        frame = pd.DataFrame(self.columns)
        if order_by is not None and len(frame):
            frame = frame.sort_values(order_by, kind="stable").reset_index(drop=True)
        return frame
