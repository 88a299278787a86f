"""A second dataset, shaped nothing like the demo, from data that ships inside scikit-learn (no download):
the breast-cancer table with string ids, a time column over two years, a derived three-value category, a
nullable int with missing values and column names with spaces. For the adoption tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer


def breast_cancer_frame(seed: int = 0) -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "benign"})
    rng = np.random.default_rng(seed)
    n = len(frame)
    frame.insert(0, "patient id", [f"P-{i:05d}" for i in range(1, n + 1)])
    seconds = np.sort(rng.uniform(0, 730 * 86400, n))
    frame.insert(1, "seen at", pd.Timestamp("2024-01-01") + pd.to_timedelta(seconds, unit="s"))
    frame["size band"] = pd.cut(
        frame["mean area"], [0, 450, 800, np.inf], labels=["small", "medium", "large"]
    )
    frame["size band"] = frame["size band"].astype(str)
    visits = pd.array(rng.integers(0, 12, n), dtype="Int64")
    visits[rng.random(n) < 0.1] = pd.NA
    frame["prior visits"] = visits
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # files are rarely in time order


def write_csv(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    breast_cancer_frame(seed).to_csv(path, index=False)
    return path
