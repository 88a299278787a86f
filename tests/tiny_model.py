"""A small real model artifact for tests that serve one (the image test, the smoke test).

Fits the scikit-learn Pipeline the contract describes on a few hundred seeded synthetic rows that follow the
schema in params.yaml, and saves it with `pipeline.artifact.save_model`, including an `example` record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.artifact import save_model
from pipeline.config import load_params


def synthetic_frame(features: dict[str, Any], rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for name, spec in features.items():
        if spec.type == "category":
            columns[name] = rng.choice(spec.allowed, size=rows)
        elif spec.type == "int":
            columns[name] = rng.integers(int(spec.min), int(min(spec.max, spec.min + 20)) + 1, size=rows)
        else:
            columns[name] = rng.uniform(spec.min, min(spec.max, spec.min + 200), size=rows).round(2)
    return pd.DataFrame(columns)


def build_tiny_model(model_dir: Path, params_path: Path, rows: int = 400, seed: int = 0) -> dict[str, Any]:
    """Fit and save a small model; returns its metadata."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    schema = load_params(params_path).schema
    X = synthetic_frame(schema.features, rows, seed)
    numeric = schema.numeric_features
    y = (X[numeric[0]] > X[numeric[0]].median()).astype(int)
    encode = ColumnTransformer(
        [("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
          schema.categorical_features)],
        remainder="passthrough",
    )
    classifier = HistGradientBoostingClassifier(max_iter=20, random_state=seed)
    model = Pipeline([("encode", encode), ("clf", classifier)])
    model.fit(X, y)
    example = {k: (v.item() if hasattr(v, "item") else v) for k, v in X.iloc[0].to_dict().items()}
    metadata = {
        "label": schema.label,
        "classes": [0, 1],
        "threshold": 0.5,
        "features": [{"name": n, "type": s.type, "nullable": s.nullable, "min": s.min, "max": s.max,
                      "allowed": s.allowed} for n, s in schema.features.items()],
        "example": example,
    }
    return save_model(model, metadata, model_dir)
