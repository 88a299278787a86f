"""A tiny model artifact for the serving tests, in the format `make run` writes (docs/contracts.md).

Trains a small scikit-learn Pipeline on synthetic records that follow params.yaml `schema.features` and saves it
with `pipeline.artifact.save_model`, so the app under test loads it exactly as it loads a real model.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.artifact import save_model
from pipeline.config import SchemaParams, load_params

REPO_ROOT = Path(__file__).resolve().parents[1]


def synthetic_frame(schema: SchemaParams, n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for name, spec in schema.features.items():
        if spec.type == "category":
            data[name] = rng.choice(spec.allowed, n).astype(object)
        else:
            lo, hi = spec.min or 0.0, min(spec.max if spec.max is not None else 100.0, 1000.0)
            values = rng.uniform(lo, hi, n)
            values = np.round(values) if spec.type == "int" else values
            if spec.nullable:
                values[rng.random(n) < 0.1] = np.nan
            data[name] = values.astype(float)
    frame = pd.DataFrame(data)
    first_num = schema.numeric_features[0]
    first_cat = schema.categorical_features[0]
    signal = (frame[first_num] < frame[first_num].median()).to_numpy() ^ (
        frame[first_cat] == schema.features[first_cat].allowed[0]).to_numpy()
    label = (signal ^ (rng.random(n) < 0.15)).astype(int)
    return frame, label


def build_pipeline(schema: SchemaParams, model_type: str, seed: int = 0):
    """The same shape as pipeline.modeling.build_pipeline (ColumnTransformer + classifier), kept small."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    numeric, categorical = schema.numeric_features, schema.categorical_features
    categories = [list(schema.features[name].allowed or []) for name in categorical]
    if model_type == "hist_gradient_boosting":
        preprocess = ColumnTransformer([
            ("num", "passthrough", numeric),
            ("cat", OrdinalEncoder(categories=categories, handle_unknown="use_encoded_value", unknown_value=np.nan,
                                   encoded_missing_value=np.nan), categorical),
        ], verbose_feature_names_out=False)
        estimator = HistGradientBoostingClassifier(
            categorical_features=[False] * len(numeric) + [True] * len(categorical), max_iter=30,
            early_stopping=False, random_state=seed)
    else:
        preprocess = ColumnTransformer([
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
            ("cat", Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                              ("onehot", OneHotEncoder(categories=categories, handle_unknown="ignore"))]),
             categorical),
        ], verbose_feature_names_out=False)
        estimator = LogisticRegression(max_iter=1000, random_state=seed)
    return Pipeline([("preprocess", preprocess), ("classifier", estimator)])


def feature_list(schema: SchemaParams) -> list[dict[str, Any]]:
    return [{"name": name, "type": spec.type, "nullable": spec.nullable, "min": spec.min, "max": spec.max,
             "allowed": spec.allowed} for name, spec in schema.features.items()]


def json_record(frame: pd.DataFrame, i: int) -> dict[str, Any]:
    """Row i as a JSON-ready record: ints as int, missing values as None."""
    record: dict[str, Any] = {}
    for name, value in frame.iloc[i].items():
        if isinstance(value, float) and np.isnan(value):
            record[name] = None
        elif isinstance(value, float):
            record[name] = int(value) if value.is_integer() else float(value)
        else:
            record[name] = str(value)
    return record


def train_tiny_model(model_dir: Path, model_type: str = "hist_gradient_boosting", rows: int = 600,
                     params_path: Path = REPO_ROOT / "params.yaml") -> dict[str, Any]:
    import sklearn
    import skops

    schema = load_params(params_path).schema
    frame, label = synthetic_frame(schema, rows)
    model = build_pipeline(schema, model_type).fit(frame, label)
    example = json_record(frame, 0)
    example = {k: v for k, v in example.items() if v is not None} | {
        k: v for k, v in json_record(frame, 1).items() if k not in example and v is not None}
    metadata = {
        "trained_at": "2026-01-01T00:00:00Z",
        "code_version": "test",
        "data": {"snapshot_sha256": "0" * 64, "rows": rows, "window_start": "2025-01-01",
                 "window_end": "2025-12-31", "cutoff": "2025-12-31", "train_rows": rows, "fit_on": "train"},
        "params": {"model_type": model_type, "seed": 0, "class_weight": "none", "hyperparameters": {}},
        "libraries": {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
                      "numpy": np.__version__, "pandas": pd.__version__, "skops": skops.__version__},
        "label": schema.label, "classes": [0, 1], "threshold": 0.5,
        "features": feature_list(schema),
        "reference": {},
        "metrics": {"roc_auc": 0.8},
        "example": example,
    }
    return save_model(model, metadata, model_dir)
