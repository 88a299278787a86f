"""The model: one scikit-learn Pipeline (preprocessing + estimator) built from params.yaml.

Swap in your own model here: `build_pipeline` is the only place that names an estimator. It must return an
estimator with `fit(X, y)` and `predict_proba(X)` on a DataFrame of the schema's feature columns.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from pipeline.config import ModelParams, SchemaParams

# Hyperparameters each model type accepts (everything else in a params dict is ignored for that type).
HYPERPARAMETERS = {
    "hist_gradient_boosting": (
        "learning_rate",
        "max_iter",
        "max_leaf_nodes",
        "min_samples_leaf",
        "l2_regularization",
    ),
    "logistic_regression": ("C",),
}
INT_HYPERPARAMETERS = {"max_iter", "max_leaf_nodes", "min_samples_leaf"}


def limit_threads(params) -> AbstractContextManager:
    """Cap OpenMP/BLAS threads at params.yaml `model.threads`: on a busy or small machine one thread per fit is
    several times faster than oversubscribed cores (measured 4x on 2 shared cores)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=params.model.threads)


def features_frame(df: pd.DataFrame, schema: SchemaParams) -> pd.DataFrame:
    """The model's input: the schema's feature columns in order, numbers as float64, categories as str/None."""
    out = {}
    for name, spec in schema.features.items():
        col = df[name]
        if spec.type == "category":
            out[name] = col.astype(object).where(col.notna(), None)
        else:
            out[name] = pd.to_numeric(col, errors="raise").astype("float64")
    return pd.DataFrame(out, index=df.index)


def select_hyperparameters(model: ModelParams, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults from params.yaml `model.defaults`, overridden by tuned values, for this model type only."""
    merged = {**model.defaults, **(overrides or {})}
    keys = HYPERPARAMETERS[model.type]
    return {
        k: (int(merged[k]) if k in INT_HYPERPARAMETERS else float(merged[k])) for k in keys if k in merged
    }


def build_pipeline(schema: SchemaParams, model: ModelParams, hyperparameters: dict[str, Any]) -> Pipeline:
    numeric, categorical = schema.numeric_features, schema.categorical_features
    categories = [list(schema.features[name].allowed or []) for name in categorical]
    class_weight = None if model.class_weight == "none" else model.class_weight
    hp = select_hyperparameters(model, hyperparameters)

    if model.type == "hist_gradient_boosting":
        # Categories are encoded with the fixed lists from the schema (stable across data), unknown -> missing.
        preprocess = ColumnTransformer(
            [
                ("num", "passthrough", numeric),
                (
                    "cat",
                    OrdinalEncoder(
                        categories=categories,
                        handle_unknown="use_encoded_value",
                        unknown_value=np.nan,
                        encoded_missing_value=np.nan,
                    ),
                    categorical,
                ),
            ],
            verbose_feature_names_out=False,
        )
        is_categorical = [False] * len(numeric) + [True] * len(categorical)
        estimator = HistGradientBoostingClassifier(
            categorical_features=is_categorical,
            early_stopping=False,
            class_weight=class_weight,
            random_state=model.seed,
            **hp,
        )
    else:
        preprocess = ColumnTransformer(
            [
                (
                    "num",
                    Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                    numeric,
                ),
                (
                    "cat",
                    Pipeline(
                        [
                            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                            ("onehot", OneHotEncoder(categories=categories, handle_unknown="ignore")),
                        ]
                    ),
                    categorical,
                ),
            ],
            verbose_feature_names_out=False,
        )
        estimator = LogisticRegression(
            class_weight=class_weight, random_state=model.seed, max_iter=2000, **hp
        )
    return Pipeline([("preprocess", preprocess), ("classifier", estimator)])
