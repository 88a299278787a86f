"""The model: one scikit-learn Pipeline (preprocessing + estimator) built from params.yaml.

Your own model: any scikit-learn classifier with `predict_proba` needs no code. Set params.yaml
`model.type: sklearn`, `model.estimator: sklearn.ensemble.RandomForestClassifier` (its dotted path), its
`model.defaults` and `tune.search_space` (keys are the estimator's `get_params()` names, checked); `sklearn`
below resolves it, adds the preprocessing `logistic_regression` uses and passes `class_weight` and the seed
(`random_state`) when the estimator takes them. mlcore.artifact trusts the scikit-learn estimator classes it
serialises, so serving follows. `MODEL_TYPES` registers the types with hand-written preprocessing; register
one here for custom preprocessing or a library other than scikit-learn (that also needs its exact type names
in mlcore.artifact.TRUSTED_TYPES and its package in requirements/serve.in and pipeline.in). A builder returns
an estimator with `fit(X, y)` and `predict_proba(X)` on a DataFrame of the schema's feature columns.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from mlcore.errors import PipelineError
from pipeline.config import ModelParams, SchemaParams


def limit_threads(model: ModelParams) -> AbstractContextManager:
    """Cap OpenMP/BLAS threads at params.yaml `model.threads`: on a busy or small machine one thread per fit is
    several times faster than oversubscribed cores (measured 4x on 2 shared cores)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=model.threads)


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
    """Defaults from params.yaml `model.defaults`, overridden by tuned values, for this model type only.

    `sklearn`: every key must be one of the estimator's parameters; values keep their type (an int dimension of
    the search space suggests ints, a YAML integer stays one)."""
    merged = {**model.defaults, **(overrides or {})}
    if model.type == SKLEARN:
        valid = estimator_parameters(model)
        unknown = sorted(set(merged) - set(valid))
        if unknown:
            raise PipelineError(
                f"params.yaml: model.defaults / tune.search_space: {unknown} are not parameters of "
                f"{model.estimator} (valid: {sorted(valid)})"
            )
        return dict(merged)
    spec = model_type(model)
    return {
        k: (int(merged[k]) if k in spec.integers else float(merged[k]))
        for k in spec.hyperparameters
        if k in merged
    }


def build_pipeline(schema: SchemaParams, model: ModelParams, hyperparameters: dict[str, Any]) -> Pipeline:
    """The registered builder of params.yaml `model.type`, with the selected hyperparameters."""
    return model_type(model).build(schema, model, select_hyperparameters(model, hyperparameters))


def _class_weight(model: ModelParams) -> str | None:
    return None if model.class_weight == "none" else model.class_weight


def hist_gradient_boosting(schema: SchemaParams, model: ModelParams, hp: dict[str, Any]) -> Pipeline:
    numeric, categorical = schema.numeric_features, schema.categorical_features
    categories = [list(schema.features[name].allowed or []) for name in categorical]
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
        class_weight=_class_weight(model),
        random_state=model.seed,
        **hp,
    )
    return Pipeline([("preprocess", preprocess), ("classifier", estimator)])


def _impute_scale_one_hot(schema: SchemaParams) -> ColumnTransformer:
    numeric, categorical = schema.numeric_features, schema.categorical_features
    categories = [list(schema.features[name].allowed or []) for name in categorical]
    return ColumnTransformer(
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


def logistic_regression(schema: SchemaParams, model: ModelParams, hp: dict[str, Any]) -> Pipeline:
    preprocess = _impute_scale_one_hot(schema)
    estimator = LogisticRegression(
        class_weight=_class_weight(model), random_state=model.seed, max_iter=2000, **hp
    )
    return Pipeline([("preprocess", preprocess), ("classifier", estimator)])


SKLEARN = "sklearn"


def resolve_estimator(model: ModelParams) -> type:
    """The class params.yaml `model.estimator` names: a scikit-learn classifier with `predict_proba`."""
    path = model.estimator
    fix = "name a scikit-learn classifier class, e.g. sklearn.ensemble.RandomForestClassifier"
    where = "params.yaml: model.estimator"
    if not path:
        raise PipelineError(f"{where}: required with model.type: {SKLEARN} ({fix})")
    module_name, _, class_name = path.rpartition(".")
    if not module_name.startswith("sklearn.") or not class_name:
        raise PipelineError(
            f"{where}: '{path}' is not under sklearn. ({fix}; another library needs its own "
            "type in src/pipeline/modeling.py MODEL_TYPES)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PipelineError(f"{where}: cannot import module '{module_name}' ({exc}; {fix})") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise PipelineError(f"{where}: '{module_name}' has no '{class_name}' ({fix})")
    if not inspect.isclass(cls) or not issubclass(cls, BaseEstimator):
        raise PipelineError(f"{where}: '{path}' is not an estimator class ({fix})")
    if not issubclass(cls, ClassifierMixin):
        raise PipelineError(f"{where}: '{path}' is not a classifier ({fix})")
    if not hasattr(cls, "predict_proba"):
        raise PipelineError(f"{where}: '{path}' has no predict_proba ({fix} that predicts probabilities)")
    return cls


def estimator_parameters(model: ModelParams) -> dict[str, Any]:
    """The parameters (`get_params()`, with their defaults) of params.yaml `model.estimator`."""
    try:
        return resolve_estimator(model)().get_params()
    except TypeError as exc:
        raise PipelineError(
            f"params.yaml: model.estimator: '{model.estimator}' needs a base estimator or other arguments "
            f"params.yaml cannot give ({exc}; register a type in src/pipeline/modeling.py MODEL_TYPES)"
        ) from None


def sklearn_classifier(schema: SchemaParams, model: ModelParams, hp: dict[str, Any]) -> Pipeline:
    """params.yaml `model.estimator` behind `logistic_regression`'s preprocessing (median impute + scale,
    constant impute + one-hot)."""
    cls = resolve_estimator(model)
    takes = estimator_parameters(model)
    given = {
        **({"class_weight": _class_weight(model)} if "class_weight" in takes else {}),
        **({"random_state": model.seed} if "random_state" in takes else {}),
        **hp,
    }
    try:
        estimator = cls(**given)
    except (TypeError, ValueError) as exc:
        raise PipelineError(f"params.yaml: model.defaults: {model.estimator} refuses {hp} ({exc})") from None
    if not hasattr(estimator, "predict_proba"):
        raise PipelineError(
            f"params.yaml: model.defaults: {model.estimator} with {hp} has no predict_proba "
            "(e.g. SGDClassifier needs loss: log_loss, SVC probability: true)"
        )
    return Pipeline([("preprocess", _impute_scale_one_hot(schema)), ("classifier", estimator)])


@dataclass(frozen=True)
class ModelType:
    """One model type params.yaml `model.type` can name."""

    build: Callable[[SchemaParams, ModelParams, dict[str, Any]], Pipeline]
    hyperparameters: tuple[str, ...]  # what model.defaults / tuning may set (other keys are ignored)
    integers: frozenset[str] = frozenset()
    # The hyperparameter that counts boosting iterations, when the classifier can grow in steps (warm_start):
    # tuning then reports each step to the pruner and stops weak trials early.
    staged: str | None = None


MODEL_TYPES: dict[str, ModelType] = {
    "hist_gradient_boosting": ModelType(
        hist_gradient_boosting,
        ("learning_rate", "max_iter", "max_leaf_nodes", "min_samples_leaf", "l2_regularization"),
        frozenset({"max_iter", "max_leaf_nodes", "min_samples_leaf"}),
        staged="max_iter",
    ),
    "logistic_regression": ModelType(logistic_regression, ("C",)),
}


def model_type(model: ModelParams) -> ModelType:
    if model.type == SKLEARN:
        return ModelType(sklearn_classifier, tuple(estimator_parameters(model)))
    if model.estimator:
        raise PipelineError(
            f"params.yaml: model.estimator: only read with model.type: {SKLEARN} (model.type is "
            f"'{model.type}': remove model.estimator or set model.type: {SKLEARN})"
        )
    try:
        return MODEL_TYPES[model.type]
    except KeyError:
        raise PipelineError(
            f"params.yaml: model.type: unknown '{model.type}' (one of {sorted(MODEL_TYPES)}, or "
            f"'{SKLEARN}' with model.estimator; register yours in src/pipeline/modeling.py MODEL_TYPES)"
        ) from None
